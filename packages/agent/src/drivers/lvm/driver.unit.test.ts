import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BackendError,
  ConflictError,
  InvalidArgumentError,
  type ConnectionInfo,
  type ConnectionRecord,
  type ConnectorInfo,
} from '@kindling/protocol';
import type { LvmBackendConfig } from '../../config.js';
import type { RunOptions, RunResult, Runner } from '../../exec/run.js';
import type { SnapshotRef, VolumeRef } from '../driver.js';
import { LvmDriver } from './driver.js';
import { withVgLock } from './queue.js';

// The recording runner: the only fake runner allowed, for paths this kernel cannot run (snapshots,
// thin, activation, dd, targetcli). Argv is checked exactly.

const GIB = 1024 ** 3;
const EXTENT = 4 * 1024 * 1024;
const VG = 'cinder-volumes';
// start() checks that lvmConfFile is readable; the commands themselves never run here.
const CONF_DIR = mkdtempSync(join(tmpdir(), 'kindling-lvm-unit-'));
writeFileSync(join(CONF_DIR, 'lvm.conf'), 'global { activation = 0 }\n');
afterAll(() => rmSync(CONF_DIR, { recursive: true, force: true }));
// LIO's configfs as far as the driver writes it: targetcli's `acls create` makes the ACL's auth folder.
const CONFIGFS = join(CONF_DIR, 'configfs');
const aclAuth = (iqn: string, initiator: string): string => join(CONFIGFS, 'iscsi', iqn, 'tpgt_1', 'acls', initiator, 'auth');
const V1 = '11111111-1111-4111-8111-111111111111';
const V2 = '22222222-2222-4222-8222-222222222222';
const V3 = '33333333-3333-4333-8333-333333333333';
const V4 = '44444444-4444-4444-8444-444444444444';
const S1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

interface FakeLv {
  name: string;
  size: number;
  tags?: string[];
  attr?: string;
  origin?: string;
  pool?: string;
  data?: number;
  meta?: number;
}

interface Fake {
  run: Runner;
  calls: { argv: string[]; env: Record<string, string> }[];
  /** Commands after start()'s report read. */
  argv(): string[][];
  reset(): void;
}

/** `lvm fullreport --reportformat json` output for these LVs. */
function reportJson(lvs: FakeLv[], opts: { vgSize?: number; vgFree?: number; mdaFree?: number } = {}): string {
  const lv = lvs.map((l) => ({
    lv_name: l.name,
    lv_size: String(l.size),
    lv_tags: (l.tags ?? []).join(','),
    lv_attr: l.attr ?? '-wi-a-----',
    origin: l.origin ?? '',
    pool_lv: l.pool ?? '',
    data_percent: l.data === undefined ? '' : l.data.toFixed(2),
    metadata_percent: l.meta === undefined ? '' : l.meta.toFixed(2),
  }));
  const vg = {
    vg_name: VG,
    vg_size: String(opts.vgSize ?? 100 * GIB),
    vg_free: String(opts.vgFree ?? 100 * GIB),
    vg_extent_size: String(EXTENT),
    lv_count: String(lv.length),
    vg_mda_free: String(opts.mdaFree ?? 500_000),
    vg_mda_size: '1044480',
  };
  return JSON.stringify({ report: [{ vg: [vg], pv: [], lv, pvseg: [], seg: [] }] });
}

interface FakeOptions {
  lvs?: FakeLv[];
  vgSize?: number;
  vgFree?: number;
  mdaFree?: number;
  fail?: (argv: string[]) => string | undefined;
  /** Holds a command until the returned promise settles (a slow lvcreate, a long dd). */
  hold?: (argv: string[]) => Promise<void> | undefined;
  /** What a command prints on stdout (the report aside). */
  output?: (argv: string[]) => string | undefined;
}

function fake(opts: FakeOptions = {}): Fake {
  const calls: Fake['calls'] = [];
  const run: Runner = async (argv, options: RunOptions = {}) => {
    calls.push({ argv: [...argv], env: options.env ?? {} });
    const stderr = opts.fail?.([...argv]);
    if (stderr !== undefined) {
      throw new BackendError(`${argv[0]} failed`, { command: [...argv], exitCode: 5, stderrTail: stderr });
    }
    await opts.hold?.([...argv]);
    const acl = argv[0] === 'targetcli' && /^\/iscsi\/([^/]+)\/tpg1\/acls$/.exec(argv[1] ?? '');
    if (acl && argv[2] === 'create') mkdirSync(aclAuth(acl[1]!, argv[3]!), { recursive: true });
    if (argv[0] === 'lvm' && argv[1] === 'fullreport') return { stdout: reportJson(opts.lvs ?? [], opts), stderr: '' };
    const stdout = opts.output?.([...argv]);
    if (stdout !== undefined) return { stdout, stderr: '' };
    return { stdout: '', stderr: '' };
  };
  let mark = 0;
  return {
    run,
    calls,
    argv: () => calls.slice(mark).map((c) => c.argv),
    reset: () => {
      mark = calls.length;
    },
  };
}

const config = (over: Partial<LvmBackendConfig> = {}): LvmBackendConfig => ({
  name: 'lvm',
  driver: 'lvm',
  volumeGroup: VG,
  lvmType: 'default',
  lvmConfFile: join(CONF_DIR, 'lvm.conf'),
  volumeClear: 'none',
  reservedPercentage: 0,
  maxOverSubscriptionRatio: 20,
  targetIp: '192.0.2.10',
  targetPort: 3260,
  ...over,
});

async function started(f: Fake, over: Partial<LvmBackendConfig> = {}): Promise<LvmDriver> {
  const driver = new LvmDriver(config(over), { run: f.run, hostname: 'agent-host', deviceExists: async () => true, configfs: CONFIGFS });
  await driver.start();
  f.reset();
  return driver;
}

const thick = (id: string, size = 1): VolumeRef => ({ id, size, location: { vg: VG, lv: `volume-${id}`, thin: false } });
const thinVol = (id: string, size = 1): VolumeRef => ({ id, size, location: { vg: VG, lv: `volume-${id}`, thin: true } });
const snapOf = (v: VolumeRef, id = S1): SnapshotRef => ({
  id,
  volumeId: v.id,
  volumeSize: v.size,
  location: { vg: VG, lv: `_snapshot-${id}`, thin: v.location.thin ?? false },
});
const volTags = (id: string): string[] => ['--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_volume'];
const snapTags = (id: string, vol: string): string[] => [
  '--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_snapshot', '--addtag', `kindling_vol_${vol}`,
];
const cloneTags = (id: string): string[] => ['--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_clone-snap'];
const REMOVE = ['lvremove', '--config', 'activation { retry_deactivation = 1 }', '-f'];
const ACTIVATE = ['lvchange', '-a', 'y', '--yes', '-K'];
const pool = { name: `${VG}-pool`, size: 90 * GIB, attr: 'twi-aotz--', data: 12.5, meta: 3.25 };

describe('LvmDriver argv (recording runner)', () => {
  it('runs every lvm2 command with LVM_SYSTEM_DIR and LVM_SUPPRESS_FD_WARNINGS', async () => {
    const f = fake();
    const driver = await started(f);
    await driver.createVolume(thick(V1));
    await driver.deleteVolume(thick(V1));
    expect(f.calls.length).toBe(3);
    for (const call of f.calls) {
      expect(call.env).toEqual({ LVM_SYSTEM_DIR: CONF_DIR, LVM_SUPPRESS_FD_WARNINGS: '1' });
    }
    expect(f.calls[0]?.argv.slice(0, 8)).toEqual(['lvm', 'fullreport', '--reportformat', 'json', '--units', 'b', '--nosuffix', '--configreport']);
  });

  it('creates a thick volume with one lvcreate, tagged, and no report read', async () => {
    const f = fake();
    const driver = await started(f);
    const location = await driver.createVolume(thick(V1, 2));
    expect(f.argv()).toEqual([['lvcreate', '-n', `volume-${V1}`, '-L', '2g', ...volTags(V1), VG]]);
    expect(location).toEqual({ vg: VG, lv: `volume-${V1}`, thin: false });
    // The cached figures followed the change arithmetically.
    expect((await driver.stats(false)).freeCapacityGb).toBe(98);
  });

  it('creates the thin pool on first use at 95% of free space, then thin volumes in it', async () => {
    const f = fake({ vgFree: 10 * GIB });
    const driver = await started(f, { lvmType: 'thin' });
    await driver.createVolume(thick(V1));
    const poolBytes = Math.floor((10 * GIB * 0.95) / EXTENT) * EXTENT;
    expect(f.argv()).toEqual([
      ['lvcreate', '-T', '-L', `${poolBytes}b`, `${VG}/${VG}-pool`],
      expect.arrayContaining(['lvm', 'fullreport']),
      ['lvcreate', '-T', '-V', '1g', '-n', `volume-${V1}`, ...volTags(V1), `${VG}/${VG}-pool`],
    ]);
  });

  it('creates thin volumes in an existing pool with one command', async () => {
    const f = fake({ lvs: [pool] });
    const driver = await started(f, { lvmType: 'thin', thinPool: undefined });
    expect(await driver.createVolume(thick(V1, 3))).toEqual({ vg: VG, lv: `volume-${V1}`, thin: true });
    expect(f.argv()).toEqual([['lvcreate', '-T', '-V', '3g', '-n', `volume-${V1}`, ...volTags(V1), `${VG}/${VG}-pool`]]);
  });

  it('auto is thin when the pool exists or the VG is empty, thick otherwise', async () => {
    expect((await started(fake(), { lvmType: 'auto' })).capabilities().thin).toBe(true);
    expect((await started(fake({ lvs: [pool] }), { lvmType: 'auto' })).capabilities().thin).toBe(true);
    const used = fake({ lvs: [{ name: 'other', size: GIB }] });
    expect((await started(used, { lvmType: 'auto' })).capabilities().thin).toBe(false);
  });

  it('refuses what does not fit before lvcreate, with requested and free', async () => {
    const f = fake({ vgFree: 5 * GIB });
    const driver = await started(f);
    const err = await driver.createVolume(thick(V1, 6)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).details).toEqual({ requestedGb: 6, freeGb: 5, neededBytes: 6 * GIB, freeBytes: 5 * GIB });
    expect((err as ConflictError).message).toMatch(/: needs 6442450944 bytes, 5368709120 bytes free$/);
    expect(f.argv()).toEqual([]);
  });

  it('honours reservedPercentage and the thin over-subscription ratio', async () => {
    const thickF = fake({ vgSize: 100 * GIB, vgFree: 20 * GIB });
    const reserved = await started(thickF, { reservedPercentage: 15 });
    await expect(reserved.createVolume(thick(V1, 6))).rejects.toMatchObject({ details: { requestedGb: 6, freeGb: 5 } });
    const thinF = fake({ lvs: [{ ...pool, size: 10 * GIB }, { name: 'volume-x', size: 15 * GIB, pool: pool.name, attr: 'Vwi-a-tz--' }] });
    const over = await started(thinF, { lvmType: 'thin', maxOverSubscriptionRatio: 2 });
    await expect(over.createVolume(thick(V1, 6))).rejects.toMatchObject({ details: { requestedGb: 6, freeGb: 5 } });
    await expect(over.createVolume(thick(V1, 5))).resolves.toMatchObject({ thin: true });
  });

  it('snapshots a thick volume with a COW size and a thin one without', async () => {
    const f = fake();
    const driver = await started(f);
    const v = thick(V1, 2);
    const result = await driver.createSnapshot(snapOf(v), v);
    const tv = thinVol(V2);
    await driver.createSnapshot(snapOf(tv), tv);
    expect(f.argv()).toEqual([
      ['lvcreate', '-s', '-k', 'y', '-L', '2g', '-n', `_snapshot-${S1}`, ...snapTags(S1, V1), `${VG}/volume-${V1}`],
      ['lvcreate', '-s', '-k', 'y', '-n', `_snapshot-${S1}`, ...snapTags(S1, V2), `${VG}/volume-${V2}`],
    ]);
    expect(result).toEqual({ snapshot: { vg: VG, lv: `_snapshot-${S1}`, thin: false }, volume: v.location });
  });

  it('deletes a snapshot idempotently', async () => {
    const f = fake({ fail: (a) => (a[0] === 'lvremove' ? `  Failed to find logical volume "${VG}/_snapshot-${S1}"` : undefined) });
    const driver = await started(f);
    const v = thick(V1);
    await expect(driver.deleteSnapshot(snapOf(v), v)).resolves.toEqual({ volume: v.location });
    expect(f.argv()).toEqual([[...REMOVE, `${VG}/_snapshot-${S1}`]]);
  });

  it('makes a thin volume from a snapshot as a snapshot of it, grown, activated with -K after clearing the skip flag (-k n)', async () => {
    const f = fake({ lvs: [pool] });
    const driver = await started(f, { lvmType: 'thin' });
    const src = thinVol(V1, 1);
    const location = await driver.createVolumeFromSnapshot(thinVol(V2, 2), snapOf(src), src);
    // Grown, it is built under its partial name: `volume-<id>` names only a copy of the right size.
    expect(f.argv()).toEqual([
      ['lvcreate', '-s', '-k', 'y', '-n', `partial-${V2}`, ...volTags(V2), `${VG}/_snapshot-${S1}`],
      ['lvextend', '-L', '2g', `${VG}/partial-${V2}`],
      ['lvchange', '-k', 'n', `${VG}/partial-${V2}`],
      [...ACTIVATE, `${VG}/partial-${V2}`],
      ['lvrename', VG, `partial-${V2}`, `volume-${V2}`],
    ]);
    expect(location).toEqual({ vg: VG, lv: `volume-${V2}`, thin: true });
  });

  it('clones a thin volume as a thin snapshot of it', async () => {
    const f = fake({ lvs: [pool] });
    const driver = await started(f, { lvmType: 'thin' });
    await driver.cloneVolume(thinVol(V2), thinVol(V1));
    expect(f.argv()).toEqual([
      ['lvcreate', '-s', '-k', 'y', '-n', `volume-${V2}`, ...volTags(V2), `${VG}/volume-${V1}`],
      ['lvchange', '-k', 'n', `${VG}/volume-${V2}`],
      [...ACTIVATE, `${VG}/volume-${V2}`],
    ]);
  });

  it('makes a thick volume from a snapshot with a flushed dd into its partial name, renamed last', async () => {
    const f = fake();
    const driver = await started(f);
    const src = thick(V1, 1);
    await driver.createVolumeFromSnapshot(thick(V2, 2), snapOf(src), src);
    expect(f.argv()).toEqual([
      [...ACTIVATE, `${VG}/_snapshot-${S1}`],
      ['lvcreate', '-n', `partial-${V2}`, '-L', '2g', ...volTags(V2), VG],
      [...ACTIVATE, `${VG}/partial-${V2}`],
      ['dd', `if=/dev/${VG}/_snapshot-${S1}`, `of=/dev/${VG}/partial-${V2}`, 'bs=1M', 'count=1024', 'iflag=direct', 'oflag=direct', 'conv=fsync', 'status=progress'],
      ['lvrename', VG, `partial-${V2}`, `volume-${V2}`],
    ]);
  });

  it('clones a thick volume through a temporary snapshot that is removed afterwards', async () => {
    const f = fake();
    const driver = await started(f);
    await driver.cloneVolume(thick(V2, 1), thick(V1, 1));
    expect(f.argv()).toEqual([
      ['lvcreate', '-s', '-k', 'y', '-L', '1g', '-n', `clone-snap-${V2}`, ...cloneTags(V2), `${VG}/volume-${V1}`],
      [...ACTIVATE, `${VG}/clone-snap-${V2}`],
      ['lvcreate', '-n', `partial-${V2}`, '-L', '1g', ...volTags(V2), VG],
      [...ACTIVATE, `${VG}/partial-${V2}`],
      ['dd', `if=/dev/${VG}/clone-snap-${V2}`, `of=/dev/${VG}/partial-${V2}`, 'bs=1M', 'count=1024', 'iflag=direct', 'oflag=direct', 'conv=fsync', 'status=progress'],
      ['lvrename', VG, `partial-${V2}`, `volume-${V2}`],
      [...REMOVE, `${VG}/clone-snap-${V2}`],
    ]);
    // The temporary snapshot's space came back; only the clone's GiB is used.
    expect((await driver.stats(false)).freeCapacityGb).toBe(99);
  });

  it('removes the half-made clone and the temporary snapshot when dd fails', async () => {
    const f = fake({ fail: (a) => (a[0] === 'dd' ? 'dd: error writing: No space left on device' : undefined) });
    const driver = await started(f);
    const err = await driver.cloneVolume(thick(V2), thick(V1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(f.argv().slice(-2)).toEqual([
      [...REMOVE, `${VG}/partial-${V2}`],
      [...REMOVE, `${VG}/clone-snap-${V2}`],
    ]);
  });

  it('extends a thick origin with snapshots inactive: deactivate, lvextend, reactivate', async () => {
    const f = fake({
      lvs: [
        { name: `volume-${V1}`, size: GIB, attr: 'owi-a-s---' },
        { name: `_snapshot-${S1}`, size: GIB, attr: 'swi-a-s---', origin: `volume-${V1}` },
      ],
    });
    const driver = await started(f);
    await driver.extendVolume(thick(V1), 3);
    await driver.extendVolume(thick(V2), 2);
    expect(f.argv()).toEqual([
      ['lvchange', '-a', 'n', `${VG}/volume-${V1}`],
      ['lvextend', '-L', '3g', `${VG}/volume-${V1}`],
      [...ACTIVATE, `${VG}/volume-${V1}`],
      ['lvextend', '-L', '2g', `${VG}/volume-${V2}`],
    ]);
  });

  it('reverts a thick volume by merging, then re-creates the snapshot under its name', async () => {
    const f = fake({ lvs: [{ name: `volume-${V1}`, size: 2 * GIB, attr: 'owi-a-s---' }, { name: `_snapshot-${S1}`, size: 2 * GIB, attr: 'swi-a-s---', origin: `volume-${V1}` }] });
    const driver = await started(f);
    const v = thick(V1, 2);
    await driver.revertToSnapshot(v, snapOf(v));
    expect(f.argv()).toEqual([
      expect.arrayContaining(['lvm', 'fullreport']),
      ['lvconvert', '--merge', `${VG}/_snapshot-${S1}`],
      ['lvchange', '-a', 'n', `${VG}/volume-${V1}`],
      [...ACTIVATE, `${VG}/volume-${V1}`],
      ['lvcreate', '-s', '-k', 'y', '-L', '2g', '-n', `_snapshot-${S1}`, ...snapTags(S1, V1), `${VG}/volume-${V1}`],
    ]);
  });

  it('waits for a thick merge lvm2 deferred to the next activation before re-creating the snapshot', async () => {
    let polls = 0;
    const f = fake({
      lvs: [{ name: `volume-${V1}`, size: GIB, attr: 'owi---s---' }, { name: `_snapshot-${S1}`, size: GIB, attr: 'swi---s---', origin: `volume-${V1}` }],
      output: (a) => {
        if (a[0] === 'lvconvert') return `  Merging of snapshot ${VG}/_snapshot-${S1} will occur on next activation of ${VG}/volume-${V1}.`;
        // lv_attr 'O' while the merge runs in the background, then a plain volume again.
        if (a[0] === 'lvs') return reportJson([{ name: `volume-${V1}`, size: GIB, attr: polls++ < 2 ? 'Owi-a-s---' : '-wi-a-----' }]);
        return undefined;
      },
    });
    const driver = new LvmDriver(config(), { run: f.run, deviceExists: async () => true, sleep: async () => undefined });
    await driver.start();
    f.reset();
    await driver.revertToSnapshot(thick(V1), snapOf(thick(V1)));
    expect(f.argv().map((a) => a.slice(0, 3).join(' '))).toEqual([
      'lvm fullreport --reportformat',
      'lvconvert --merge cinder-volumes/_snapshot-aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
      'lvchange -a n',
      'lvchange -a y',
      'lvs --reportformat json',
      'lvs --reportformat json',
      'lvs --reportformat json',
      'lvcreate -s -k',
    ]);
  });

  it('reverts a thin volume by building it from the snapshot beside the old one, then swapping', async () => {
    const f = fake({ lvs: [pool] });
    const driver = await started(f, { lvmType: 'thin' });
    const v = thinVol(V1, 1);
    expect(await driver.revertToSnapshot(v, snapOf(v))).toEqual({ vg: VG, lv: `volume-${V1}`, thin: true });
    expect(f.argv()).toEqual([
      expect.arrayContaining(['lvm', 'fullreport']),
      ['lvcreate', '-s', '-k', 'y', '-n', `revert-${V1}`, ...volTags(V1), `${VG}/_snapshot-${S1}`],
      ['lvchange', '-k', 'n', `${VG}/revert-${V1}`],
      [...ACTIVATE, `${VG}/revert-${V1}`],
      [...REMOVE, `${VG}/volume-${V1}`],
      ['lvrename', VG, `revert-${V1}`, `volume-${V1}`],
    ]);
  });

  it('removes the half-made revert copy of a thin volume when activating it fails, and keeps the volume', async () => {
    const f = fake({ lvs: [pool], fail: (a) => (a[0] === 'lvchange' && a.includes('-a') ? '  activation failed' : undefined) });
    const driver = await started(f, { lvmType: 'thin' });
    const v = thinVol(V1, 1);
    await expect(driver.revertToSnapshot(v, snapOf(v))).rejects.toThrow(/lvchange failed/);
    expect(f.argv()).toEqual([
      expect.arrayContaining(['lvm', 'fullreport']),
      ['lvcreate', '-s', '-k', 'y', '-n', `revert-${V1}`, ...volTags(V1), `${VG}/_snapshot-${S1}`],
      ['lvchange', '-k', 'n', `${VG}/revert-${V1}`],
      [...ACTIVATE, `${VG}/revert-${V1}`],
      [...REMOVE, `${VG}/revert-${V1}`],
    ]);
  });

  it('deletes with cinder retry settings, and is idempotent when the LV is gone', async () => {
    let first = true;
    const f = fake({
      fail: (a) => {
        if (a[0] !== 'lvremove' || !first) return undefined;
        first = false;
        return '  Logical volume cinder-volumes/volume-x in use.';
      },
    });
    const driver = await started(f);
    await driver.deleteVolume(thick(V1));
    expect(f.argv()).toEqual([
      [...REMOVE, `${VG}/volume-${V1}`],
      ['lvremove', '--config', 'activation { retry_deactivation = 1 } devices { ignore_suspended_devices = 1 }', '-f', `${VG}/volume-${V1}`],
    ]);
    const gone = fake({ fail: (a) => (a[0] === 'lvremove' ? `  Failed to find logical volume "${VG}/volume-${V1}"` : undefined) });
    const d2 = await started(gone);
    await expect(d2.deleteVolume(thick(V1))).resolves.toBeUndefined();
    expect(gone.argv()).toHaveLength(1);
  });

  it('zeroes a thick volume renamed aside before removing it when volumeClear is zero', async () => {
    const f = fake({ lvs: [{ name: `volume-${V1}`, size: 2 * GIB }] });
    const driver = await started(f, { volumeClear: 'zero' });
    await driver.deleteVolume(thick(V1, 2));
    expect(f.argv()).toEqual([
      [...ACTIVATE, `${VG}/volume-${V1}`],
      ['lvrename', VG, `volume-${V1}`, `clear-volume-${V1}`],
      ['dd', 'if=/dev/zero', `of=/dev/${VG}/clear-volume-${V1}`, 'bs=1M', 'count=2048', 'oflag=direct', 'status=progress'],
      [...REMOVE, `${VG}/clear-volume-${V1}`],
    ]);
  });

  it('zeroes a thick snapshot copy-on-write store (its dm -cow device) before removing it, as cinder', async () => {
    const f = fake({
      lvs: [
        { name: `volume-${V1}`, size: GIB, attr: 'owi-a-s---' },
        { name: `_snapshot-${S1}`, size: GIB, attr: 'swi-a-s---', origin: `volume-${V1}` },
      ],
    });
    const driver = await started(f, { volumeClear: 'zero' });
    const v = thick(V1);
    await driver.deleteSnapshot(snapOf(v), v);
    expect(f.argv()).toEqual([
      [...ACTIVATE, `${VG}/_snapshot-${S1}`],
      ['lvrename', VG, `_snapshot-${S1}`, `clear-_snapshot-${S1}`],
      ['dd', 'if=/dev/zero', `of=/dev/mapper/cinder--volumes-clear--_snapshot--${S1.replace(/-/g, '--')}-cow`, 'bs=1M', 'count=1024', 'oflag=direct', 'status=progress'],
      [...REMOVE, `${VG}/clear-_snapshot-${S1}`],
    ]);
  });

  it('attaches by activating and returns the device; detach deactivates', async () => {
    const f = fake();
    const driver = await started(f);
    const att = await driver.attach(thick(V1));
    expect(att).toEqual({
      path: `/dev/${VG}/volume-${V1}`,
      connectionInfo: { driverVolumeType: 'local', data: { device_path: `/dev/${VG}/volume-${V1}` } },
    });
    await driver.detach(thick(V1), conn({ host: 'agent-host' }, att.connectionInfo));
    expect(f.argv()).toEqual([
      [...ACTIVATE, `${VG}/volume-${V1}`],
      ['lvchange', '-a', 'n', `${VG}/volume-${V1}`],
    ]);
  });

  it('reports an activation that makes no device as a BackendError with the command', async () => {
    const f = fake();
    const driver = new LvmDriver(config(), { run: f.run, deviceExists: async () => false });
    await driver.start();
    const err = await driver.attach(thick(V1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).details).toMatchObject({ command: [...ACTIVATE, `${VG}/volume-${V1}`], exitCode: 0 });
  });
});

const INITIATOR = 'iqn.1993-08.org.debian:01:abcdef';
const INITIATOR2 = 'iqn.1993-08.org.debian:01:123456';
const IQN = `iqn.2010-10.org.openstack:volume-${V1}`;

function conn(connectorInfo: ConnectorInfo, connectionInfo: ConnectionInfo): ConnectionRecord {
  return {
    id: crypto.randomUUID(),
    backend: 'lvm',
    volumeId: V1,
    connectorInfo,
    connectionInfo,
    path: null,
    attached: true,
    createdAt: new Date().toISOString(),
  };
}

describe('LvmDriver iSCSI export through targetcli (recording runner)', () => {
  it('exports on first connect: activate, backstore, target, LUN, CHAP, ACL, save', async () => {
    const f = fake();
    const driver = await started(f);
    const att = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, []);
    const data = att.connectionInfo.data;
    expect(att.path).toBeNull();
    expect(att.connectionInfo.driverVolumeType).toBe('iscsi');
    expect(data).toMatchObject({
      target_discovered: false,
      target_iqn: IQN,
      target_portal: '192.0.2.10:3260',
      target_lun: 0,
      volume_id: V1,
      auth_method: 'CHAP',
    });
    expect(data.auth_username).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(data.auth_password).toMatch(/^[A-Za-z0-9]{16}$/);
    expect(f.argv()).toEqual([
      [...ACTIVATE, `${VG}/volume-${V1}`],
      ['targetcli', '/backstores/block', 'create', `name=volume-${V1}`, `dev=/dev/${VG}/volume-${V1}`],
      ['targetcli', '/iscsi', 'create', IQN],
      ['targetcli', `/iscsi/${IQN}/tpg1/luns`, 'create', `/backstores/block/volume-${V1}`],
      ['targetcli', `/iscsi/${IQN}/tpg1`, 'set', 'attribute', 'authentication=1', 'generate_node_acls=0'],
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'create', INITIATOR],
      ['targetcli', 'saveconfig'],
    ]);
    // CHAP goes into configfs, never on a command line where `ps` would show the secret.
    expect(readFileSync(join(aclAuth(IQN, INITIATOR), 'userid'), 'utf8')).toBe(data.auth_username);
    expect(readFileSync(join(aclAuth(IQN, INITIATOR), 'password'), 'utf8')).toBe(data.auth_password);
    expect(f.argv().flat().join(' ')).not.toContain(String(data.auth_password));
  });

  it('moves the portal when the port is not 3260', async () => {
    const f = fake();
    const driver = await started(f, { targetPort: 3261 });
    const att = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, []);
    expect(att.connectionInfo.data.target_portal).toBe('192.0.2.10:3261');
    expect(f.argv()).toContainEqual(['targetcli', `/iscsi/${IQN}/tpg1/portals`, 'delete', '0.0.0.0', '3260']);
    expect(f.argv()).toContainEqual(['targetcli', `/iscsi/${IQN}/tpg1/portals`, 'create', '192.0.2.10', '3261']);
  });

  it('adds only an ACL for a second host, and reuses the ACL of a host already connected', async () => {
    const f = fake();
    const driver = await started(f);
    const first = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, []);
    const existing = [conn({ host: 'compute-1', initiator: INITIATOR }, first.connectionInfo)];
    f.reset();
    const second = await driver.connect(thick(V1), { host: 'compute-2', initiator: INITIATOR2 }, existing);
    expect(f.argv()).toEqual([
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'create', INITIATOR2],
      ['targetcli', 'saveconfig'],
    ]);
    expect(readFileSync(join(aclAuth(IQN, INITIATOR2), 'password'), 'utf8')).toBe(second.connectionInfo.data.auth_password);
    expect(second.connectionInfo.data.auth_password).not.toBe(first.connectionInfo.data.auth_password);
    f.reset();
    const again = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, existing);
    expect(again.connectionInfo).toEqual(first.connectionInfo);
    expect(f.argv()).toEqual([]);
  });

  it('removes the ACL on disconnect, and the whole export with the last connection', async () => {
    const f = fake();
    const driver = await started(f);
    const info: ConnectionInfo = { driverVolumeType: 'iscsi', data: {} };
    const c1 = conn({ host: 'compute-1', initiator: INITIATOR }, info);
    const c2 = conn({ host: 'compute-2', initiator: INITIATOR2 }, info);
    await driver.disconnect(thick(V1), c1, [c2]);
    expect(f.argv()).toEqual([
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'delete', INITIATOR],
      ['targetcli', 'saveconfig'],
    ]);
    f.reset();
    await driver.disconnect(thick(V1), c2, []);
    expect(f.argv()).toEqual([
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'delete', INITIATOR2],
      ['targetcli', '/iscsi', 'delete', IQN],
      ['targetcli', '/backstores/block', 'delete', `volume-${V1}`],
      ['targetcli', 'saveconfig'],
      ['lvchange', '-a', 'n', `${VG}/volume-${V1}`],
    ]);
  });

  it('takes a half-made export down when a step fails', async () => {
    const f = fake({ fail: (a) => (a[1] === `/iscsi/${IQN}/tpg1/luns` ? 'No such path /backstores/block/x' : undefined) });
    const driver = await started(f);
    await expect(driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, [])).rejects.toBeInstanceOf(BackendError);
    expect(f.argv().slice(-2)).toEqual([
      ['targetcli', '/iscsi', 'delete', IQN],
      ['targetcli', '/backstores/block', 'delete', `volume-${V1}`],
    ]);
  });

  it('answers a connector on this host with a local attach', async () => {
    const f = fake();
    const driver = await started(f);
    const att = await driver.connect(thick(V1), { host: 'agent-host' }, []);
    expect(att.connectionInfo.driverVolumeType).toBe('local');
    expect(f.argv()).toEqual([[...ACTIVATE, `${VG}/volume-${V1}`]]);
  });

  it('validates the initiator before it can reach argv', async () => {
    const driver = await started(fake());
    expect(() => driver.validateConnector({ host: 'compute-1' })).toThrow(InvalidArgumentError);
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: 'iqn.2004-10.com.x:h; rm -rf /' })).toThrow(
      InvalidArgumentError,
    );
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: '/iscsi delete' })).toThrow(InvalidArgumentError);
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: INITIATOR })).not.toThrow();
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: 'eui.02004567A425678D' })).not.toThrow();
    expect(() => driver.validateConnector({ host: 'agent-host' })).not.toThrow();
  });
});

describe('LvmDriver figures (recording runner)', () => {
  it('reports thin stats from the pool, like cinder', async () => {
    const f = fake({
      vgSize: 100 * GIB,
      vgFree: 5 * GIB,
      lvs: [pool, { name: `volume-${V1}`, size: 50 * GIB, pool: pool.name, attr: 'Vwi-a-tz--' }],
    });
    const driver = await started(f, { lvmType: 'thin' });
    const stats = await driver.stats(false);
    expect(stats).toMatchObject({
      totalCapacityGb: 90,
      freeCapacityGb: 78.75,
      provisionedCapacityGb: 50,
      thinProvisioningSupport: true,
      thickProvisioningSupport: false,
      storageProtocol: 'iSCSI',
      extra: { thinPoolDataPercent: 12.5, thinPoolMetadataPercent: 3.25, vgMdaFreeBytes: 500_000, vgMdaSizeBytes: 1044480 },
    });
    expect(f.argv()).toEqual([]);
    await driver.stats(true);
    expect(f.argv()).toHaveLength(1);
  });

  it('warns in readiness when the VG metadata area is nearly full', async () => {
    const driver = await started(fake({ mdaFree: 200_000 }));
    const r = await driver.readiness();
    expect(r.ready).toBe(true);
    expect(r.warnings?.[0]).toMatch(/metadata area is nearly full/);
  });

  it('rebuilds volumes and snapshots from tags, trusting the id that names the LV', async () => {
    const f = fake({
      lvs: [
        pool,
        { name: `volume-${V1}`, size: 2 * GIB, tags: [`kindling_id_${V1}`, 'kindling_kind_volume'], pool: pool.name, attr: 'Vwi-a-tz--' },
        {
          name: `_snapshot-${S1}`,
          size: 2 * GIB,
          // As if the origin's tags had been inherited.
          tags: [`kindling_id_${V1}`, `kindling_id_${S1}`, 'kindling_kind_snapshot', `kindling_vol_${V1}`],
          pool: pool.name,
          origin: `volume-${V1}`,
          attr: 'Vri---tz-k',
        },
        { name: `clone-snap-${V2}`, size: GIB },
      ],
    });
    const driver = await started(f, { lvmType: 'thin' });
    expect(await driver.scan()).toEqual({
      volumes: [{ id: V1, size: 2, location: { vg: VG, lv: `volume-${V1}`, thin: true } }],
      snapshots: [{ id: S1, volumeId: V1, location: { vg: VG, lv: `_snapshot-${S1}`, thin: true } }],
      leftovers: [],
      // Named like a clone's temporary snapshot, but nothing proves it Kindling's: reported, never removed.
      strays: [{ where: `${VG}/clone-snap-${V2}`, reason: `named as Kindling's, but without its tag kindling_id_${V2}` }],
    });
  });

  it('answers connectionSize from the cache, and with one lvs when the cache lacks the LV', async () => {
    const f = fake({ lvs: [{ name: `volume-${V1}`, size: 3 * GIB }] });
    const driver = await started(f);
    expect(await driver.connectionSize(thick(V1, 3), {} as ConnectionRecord)).toBe(3 * GIB);
    expect(f.argv()).toEqual([]);
  });
});

describe('per-VG write queue', () => {
  it('runs one write at a time per VG, in order, and survives a failure', async () => {
    const order: string[] = [];
    const step = (name: string, fail = false) => async (): Promise<string> => {
      order.push(`${name}:start`);
      await new Promise((r) => setTimeout(r, 5));
      order.push(`${name}:end`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([
      withVgLock('vg-q', step('a')),
      withVgLock('vg-q', step('b', true)),
      withVgLock('vg-q', step('c')),
    ]);
    expect(order).toEqual(['a:start', 'a:end', 'b:start', 'b:end', 'c:start', 'c:end']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});

/** A promise to hold a command with, and the way to let it go. */
function gate(): { promise: Promise<void>; open: () => void; reached: Promise<void>; arrive: () => void } {
  let open = (): void => undefined;
  let arrive = (): void => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  return { promise, open, reached, arrive };
}

describe('LvmDriver and its VG queue (recording runner)', () => {
  it('a stats refresh racing a create waits for it, and the later delete still zeroes (the record says thick)', async () => {
    const slow = gate();
    // The report never lists the new LV, as a refresh read just before lvcreate finished would not.
    const f = fake({
      hold: (a) => {
        if (a[0] !== 'lvcreate') return undefined;
        slow.arrive();
        return slow.promise;
      },
    });
    const driver = await started(f, { volumeClear: 'zero' });
    const create = driver.createVolume(thick(V1, 1));
    await slow.reached;
    const stats = driver.stats(true);
    await new Promise((r) => setImmediate(r));
    // The refresh runs inside the VG queue: not before the create is done.
    expect(f.argv().map((a) => a[0])).toEqual(['lvcreate']);
    slow.open();
    await Promise.all([create, stats]);
    expect(f.argv().map((a) => a[0])).toEqual(['lvcreate', 'lvm']);
    await driver.deleteVolume(thick(V1, 1));
    expect(f.argv()).toContainEqual(['dd', 'if=/dev/zero', `of=/dev/${VG}/clear-volume-${V1}`, 'bs=1M', 'count=1024', 'oflag=direct', 'status=progress']);
  });

  it('zeroes outside the VG queue: another create completes while a zeroing dd is stalled', async () => {
    const zeroing = gate();
    const f = fake({
      hold: (a) => {
        if (a[0] !== 'dd') return undefined;
        zeroing.arrive();
        return zeroing.promise;
      },
    });
    const driver = await started(f, { volumeClear: 'zero' });
    const deleting = driver.deleteVolume(thick(V1, 8));
    await zeroing.reached;
    await expect(driver.createVolume(thick(V2, 1))).resolves.toMatchObject({ lv: `volume-${V2}` });
    await expect(driver.stats(true)).resolves.toBeDefined();
    zeroing.open();
    await deleting;
    expect(f.argv().map((a) => a.slice(0, 2).join(' '))).toEqual([
      'lvchange -a',
      'lvrename cinder-volumes',
      'dd if=/dev/zero',
      'lvcreate -n',
      'lvm fullreport',
      'lvremove --config',
    ]);
  });

  it('zeroes a thick delete even with a report that lists the volume as thin, and never a thin one', async () => {
    const f = fake({ lvs: [{ name: `volume-${V1}`, size: GIB, pool: pool.name, attr: 'Vwi-a-tz--' }, { name: `volume-${V2}`, size: GIB }] });
    const driver = await started(f, { volumeClear: 'zero' });
    await driver.deleteVolume(thick(V1));
    await driver.deleteVolume(thinVol(V2));
    expect(f.argv().map((a) => a[0])).toEqual(['lvchange', 'lvrename', 'dd', 'lvremove', 'lvremove']);
  });
});

// ---- crash at every step: a small lvm2 world the recording runner acts on ----

interface WorldLv extends FakeLv {
  /** What the LV holds, as a label: `data:<who>`, `zeros`, `empty`, `partial:<what>`. */
  content: string;
  /** For a thick snapshot: what its copy-on-write store holds (the origin's old blocks, or zeros). */
  cow?: string;
  /** A merging snapshot: lvm2 hides it (`[name]`) until the merge is done. */
  hidden?: boolean;
}

const notFound = (argv: readonly string[], what: string): BackendError =>
  new BackendError(`${argv[0]} failed`, { command: [...argv], exitCode: 5, stderrTail: `  Failed to find logical volume "${VG}/${what}"` });

/** Where an agent dies: before the matching command runs, after it, or (dd) halfway through it. */
interface Crash {
  at: number;
  when: 'before' | 'after' | 'during';
}

/**
 * LVs with contents, changed by the commands the driver runs. `agent()` is one agent process: after
 * its crash point every later command fails unrun, as when the process is gone (no cleanup runs).
 */
class World {
  readonly lvs = new Map<string, WorldLv>();
  /** Thick LVs removed while they (or their COW store) still held data: what the next tenant could read. */
  readonly leaked: string[] = [];

  constructor(lvs: WorldLv[]) {
    for (const lv of lvs) this.lvs.set(lv.name, lv);
  }

  agent(crash?: Crash): { run: Runner; calls: string[][] } {
    const calls: string[][] = [];
    let dead = false;
    const run: Runner = async (argv) => {
      if (dead) throw new Error('the agent is gone');
      const i = calls.push([...argv]) - 1;
      if (crash?.at === i && crash.when !== 'after') {
        dead = true;
        if (crash.when === 'during') this.apply(argv, true);
        throw new Error('killed');
      }
      const out = this.apply(argv, false);
      if (crash?.at === i) {
        dead = true;
        throw new Error('killed');
      }
      return out;
    };
    return { run, calls };
  }

  private get(argv: readonly string[], path: string | undefined): WorldLv {
    const name = (path ?? '').replace(`${VG}/`, '');
    const lv = this.lvs.get(name);
    if (!lv) throw notFound(argv, name);
    return lv;
  }

  private apply(argv: readonly string[], halfway: boolean): RunResult {
    const ok = { stdout: '', stderr: '' };
    const last = argv.at(-1);
    const opt = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
    const tags = argv.flatMap((a, i) => (argv[i - 1] === '--addtag' ? [a] : []));
    switch (argv[0]) {
      case 'lvm':
        return { stdout: reportJson([...this.lvs.values()].filter((l) => !l.hidden)), stderr: '' };
      case 'lvs':
        return { stdout: JSON.stringify({ report: [{ lv: JSON.parse(reportJson([this.get(argv, last)])).report[0].lv }] }), stderr: '' };
      case 'lvcreate': {
        const name = opt('-n') ?? '';
        if (this.lvs.has(name)) throw new BackendError('lvcreate failed', { command: [...argv], exitCode: 5, stderrTail: `  Logical Volume "${name}" already exists` });
        const gb = (flag: string): number => Number(opt(flag)?.replace('g', '')) * GIB;
        if (argv.includes('-s')) {
          const origin = this.get(argv, last);
          const thin = !argv.includes('-L');
          this.lvs.set(name, {
            name, size: thin ? origin.size : gb('-L'), tags, origin: origin.name, content: origin.content,
            attr: thin ? 'Vwi---tz-k' : 'swi-a-s---', pool: thin ? pool.name : '', cow: thin ? undefined : 'empty',
          });
        } else if (argv.includes('-T')) {
          this.lvs.set(name, { name, size: gb('-V'), tags, attr: 'Vwi-a-tz--', pool: pool.name, content: 'zeros' });
        } else {
          this.lvs.set(name, { name, size: gb('-L'), tags, attr: '-wi-a-----', content: 'empty' });
        }
        return ok;
      }
      case 'lvremove': {
        const lv = this.get(argv, last);
        const thin = (lv.pool ?? '') !== '';
        if (!thin && (lv.origin ? lv.cow !== 'zeros' : lv.content !== 'zeros')) this.leaked.push(lv.name);
        this.lvs.delete(lv.name);
        return ok;
      }
      case 'lvrename': {
        const [, , from = '', to = ''] = argv;
        const lv = this.get(argv, `${VG}/${from}`);
        if (this.lvs.has(to)) throw new BackendError('lvrename failed', { command: [...argv], exitCode: 5, stderrTail: `  Logical Volume "${to}" already exists` });
        this.lvs.delete(from);
        this.lvs.set(to, { ...lv, name: to });
        for (const other of this.lvs.values()) if (other.origin === from) other.origin = to;
        return ok;
      }
      case 'lvextend': {
        const lv = this.get(argv, last);
        const size = Number(opt('-L')?.replace('g', '')) * GIB;
        if (size === lv.size) throw new BackendError('lvextend failed', { command: [...argv], exitCode: 5, stderrTail: '  New size (256 extents) matches existing size (256 extents).' });
        if (!lv.pool && lv.attr?.[4] === 'a' && [...this.lvs.values()].some((s) => s.origin === lv.name && !s.pool)) {
          throw new BackendError('lvextend failed', { command: [...argv], exitCode: 5, stderrTail: '  Snapshot origin volumes can be resized only while inactive: try lvchange -an.' });
        }
        lv.size = size;
        return ok;
      }
      case 'lvchange': {
        const lv = this.get(argv, last);
        const state = opt('-a');
        if (state) lv.attr = `${(lv.attr ?? '-wi-------').slice(0, 4)}${state === 'y' ? 'a' : '-'}${(lv.attr ?? '-wi-------').slice(5)}`;
        // Activating an origin lets a merge lvm2 had to defer (or was interrupted in) run to its end.
        const merging = [...this.lvs.values()].find((s) => s.origin === lv.name && s.hidden);
        if (state === 'y' && merging) this.merge(merging);
        return ok;
      }
      case 'lvconvert': {
        const snap = this.get(argv, last);
        // Halfway: the merge started (deferred, or the agent died while lvconvert waited for it).
        if (halfway) {
          snap.hidden = true;
          const origin = this.lvs.get(snap.origin ?? '');
          if (origin) origin.attr = `O${(origin.attr ?? '').slice(1)}`;
        } else this.merge(snap);
        return ok;
      }
      case 'dd': {
        const from = (argv.find((a) => a.startsWith('if=')) ?? '').slice(3);
        const to = (argv.find((a) => a.startsWith('of=')) ?? '').slice(3);
        if (from === '/dev/zero') {
          const cow = [...this.lvs.values()].find((l) => to === `/dev/mapper/${VG.replace(/-/g, '--')}-${l.name.replace(/-/g, '--')}-cow`);
          if (cow) cow.cow = halfway ? 'partial' : 'zeros';
          else this.get(argv, to.replace(`/dev/${VG}/`, '')).content = halfway ? 'partial' : 'zeros';
          return ok;
        }
        const source = this.get(argv, from.replace(`/dev/${VG}/`, ''));
        this.get(argv, to.replace(`/dev/${VG}/`, '')).content = halfway ? `partial:${source.content}` : source.content;
        return ok;
      }
      default:
        throw new Error(`the world does not know ${argv.join(' ')}`);
    }
  }

  private merge(snap: WorldLv): void {
    const origin = this.lvs.get(snap.origin ?? '');
    if (origin) {
      origin.content = snap.content;
      origin.attr = `-${(origin.attr ?? '').slice(1)}`;
    }
    this.lvs.delete(snap.name);
  }
}

const DATA = 'data:source';
const SNAP = 'data:snapshot';

/** The VG a crash test starts from: a source volume with its data, and a snapshot of older data. */
function sourceWorld(thinLvs: boolean): World {
  const volume = thinLvs
    ? { name: `volume-${V1}`, size: GIB, tags: [`kindling_id_${V1}`, 'kindling_kind_volume'], attr: 'Vwi-a-tz--', pool: pool.name, content: DATA }
    : { name: `volume-${V1}`, size: GIB, tags: [`kindling_id_${V1}`, 'kindling_kind_volume'], attr: 'owi-a-s---', content: DATA };
  const snapshot = {
    name: `_snapshot-${S1}`, size: GIB, origin: `volume-${V1}`, content: SNAP,
    tags: [`kindling_id_${S1}`, 'kindling_kind_snapshot', `kindling_vol_${V1}`],
    ...(thinLvs ? { attr: 'Vri---tz-k', pool: pool.name } : { attr: 'swi-a-s---', cow: 'data:old blocks' }),
  };
  return new World([...(thinLvs ? [{ ...pool, content: '' }] : []), volume, snapshot]);
}

async function agentOn(world: World, thinLvs: boolean, crash?: Crash): Promise<{ driver: LvmDriver; calls: string[][] }> {
  const { run, calls } = world.agent(crash);
  const driver = new LvmDriver(config({ lvmType: thinLvs ? 'thin' : 'default', volumeClear: 'zero' }), {
    run,
    hostname: 'agent-host',
    deviceExists: async () => true,
    sleep: async () => undefined,
  });
  await driver.start();
  return { driver, calls };
}

/** Runs `op` once to count its commands, then once per command and crash point in a fresh world. */
async function everyCrash(
  thinLvs: boolean,
  op: (driver: LvmDriver) => Promise<unknown>,
  check: (world: World, driver: LvmDriver, crash: Crash) => Promise<void>,
): Promise<number> {
  const clean = await agentOn(sourceWorld(thinLvs), thinLvs);
  const before = clean.calls.length;
  await op(clean.driver);
  const steps = clean.calls.length - before;
  for (let at = before; at < before + steps; at++) {
    for (const when of ['before', 'during', 'after'] as const) {
      const world = sourceWorld(thinLvs);
      const crash = { at, when };
      const { driver } = await agentOn(world, thinLvs, crash);
      // A crash in a step whose failure is swallowed (a temporary snapshot's cleanup) still ends the agent.
      await op(driver).catch(() => undefined);
      // The restarted agent: recovery removes what scan reports as left over, before serving.
      const restarted = (await agentOn(world, thinLvs)).driver;
      for (const leftover of (await restarted.scan()).leftovers) await restarted.removeLeftover(leftover);
      await check(world, restarted, crash);
    }
  }
  return steps;
}

const names = (world: World): string[] => [...world.lvs.keys()].filter((n) => n !== pool.name).sort();
const content = (world: World, lv: string): string | undefined => world.lvs.get(lv)?.content;

describe('LvmDriver after a crash at every step (recording runner on a small lvm2 world)', () => {
  for (const thinLvs of [false, true]) {
    const kind = thinLvs ? 'thin' : 'thick';
    const src = thinLvs ? thinVol(V1) : thick(V1);

    it(`${kind} clone: never published incomplete; leftovers go (zeroed); a retry finishes`, async () => {
      const steps = await everyCrash(thinLvs, (d) => d.cloneVolume(thinLvs ? thinVol(V2, 2) : thick(V2), src), async (world, driver, crash) => {
        const scan = await driver.scan();
        const published = scan.volumes.some((v) => v.id === V2);
        if (published) expect(content(world, `volume-${V2}`), JSON.stringify(crash)).toBe(DATA);
        expect(scan.leftovers).toEqual([]);
        expect(world.leaked, JSON.stringify(crash)).toEqual([]);
        // The record went to error (or available): delete it and clone again.
        await driver.deleteVolume(thinLvs ? thinVol(V2, 2) : thick(V2));
        await driver.cloneVolume(thinLvs ? thinVol(V2, 2) : thick(V2), src);
        expect(content(world, `volume-${V2}`)).toBe(DATA);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`, `volume-${V2}`]);
        expect(world.leaked).toEqual([]);
      });
      expect(steps).toBeGreaterThanOrEqual(thinLvs ? 5 : 7);
    });

    it(`${kind} volume from a snapshot: never published incomplete; a retry finishes`, async () => {
      const v2 = thinLvs ? thinVol(V2, 2) : thick(V2, 2);
      await everyCrash(thinLvs, (d) => d.createVolumeFromSnapshot(v2, snapOf(src), src), async (world, driver, crash) => {
        const scan = await driver.scan();
        if (scan.volumes.some((v) => v.id === V2)) {
          expect(content(world, `volume-${V2}`), JSON.stringify(crash)).toBe(SNAP);
          expect(scan.volumes.find((v) => v.id === V2)?.size).toBe(2);
        }
        expect(scan.leftovers).toEqual([]);
        expect(world.leaked).toEqual([]);
        await driver.deleteVolume(v2);
        await driver.createVolumeFromSnapshot(v2, snapOf(src), src);
        expect(content(world, `volume-${V2}`)).toBe(SNAP);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`, `volume-${V2}`]);
      });
    });

    it(`${kind} revert: resumed by a second call from any step, the volume holds the snapshot's data and the snapshot stays`, async () => {
      await everyCrash(thinLvs, (d) => d.revertToSnapshot(src, snapOf(src)), async (world, driver, crash) => {
        // Never an available volume with neither the old nor the snapshot's data, and never no volume at all.
        expect([DATA, SNAP], JSON.stringify(crash)).toContain(content(world, `volume-${V1}`));
        await driver.revertToSnapshot(src, snapOf(src));
        expect(content(world, `volume-${V1}`), JSON.stringify(crash)).toBe(SNAP);
        expect(content(world, `_snapshot-${S1}`)).toBe(SNAP);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`]);
        expect((await driver.scan()).leftovers).toEqual([]);
      });
    });

    it(`${kind} revert: a second call without removeLeftover first also finishes`, async () => {
      const clean = await agentOn(sourceWorld(thinLvs), thinLvs);
      const before = clean.calls.length;
      await clean.driver.revertToSnapshot(src, snapOf(src));
      for (let at = before; at < clean.calls.length; at++) {
        const world = sourceWorld(thinLvs);
        await expect((await agentOn(world, thinLvs, { at, when: 'after' })).driver.revertToSnapshot(src, snapOf(src))).rejects.toThrow();
        const driver = (await agentOn(world, thinLvs)).driver;
        await driver.revertToSnapshot(src, snapOf(src));
        expect(content(world, `volume-${V1}`)).toBe(SNAP);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`]);
      }
    });

    it(`${kind} volume delete: finished by a retry or by removeLeftover, and zeroed first when thick`, async () => {
      const world = new World([{ name: `volume-${V2}`, size: GIB, tags: [`kindling_id_${V2}`, 'kindling_kind_volume'], content: DATA, ...(thinLvs ? { pool: pool.name, attr: 'Vwi-a-tz--' } : {}) }]);
      const clean = await agentOn(world, thinLvs);
      const before = clean.calls.length;
      await clean.driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2));
      const steps = clean.calls.length - before;
      for (let at = before; at < before + steps; at++) {
        for (const when of ['before', 'during', 'after'] as const) {
          for (const finish of ['retry', 'removeLeftover'] as const) {
            const w = new World([{ name: `volume-${V2}`, size: GIB, tags: [`kindling_id_${V2}`, 'kindling_kind_volume'], content: DATA, ...(thinLvs ? { pool: pool.name, attr: 'Vwi-a-tz--' } : {}) }]);
            await expect((await agentOn(w, thinLvs, { at, when })).driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2))).rejects.toThrow();
            const driver = (await agentOn(w, thinLvs)).driver;
            const scan = await driver.scan();
            if (finish === 'retry') await driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2));
            else for (const leftover of scan.leftovers) await driver.removeLeftover(leftover);
            // removeLeftover alone finishes only what left the final name; a deleting record with it is retried.
            if (finish === 'removeLeftover' && scan.volumes.length) await driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2));
            expect(names(w), JSON.stringify({ at, when, finish })).toEqual([]);
            expect(w.leaked, JSON.stringify({ at, when, finish })).toEqual([]);
          }
        }
      }
    });
  }

  it('thick snapshot delete: its copy-on-write store is zeroed before it goes, whatever step the agent died at', async () => {
    const src = thick(V1);
    await everyCrash(false, (d) => d.deleteSnapshot(snapOf(src), src), async (world, driver, crash) => {
      await driver.deleteSnapshot(snapOf(src), src);
      expect(names(world)).toEqual([`volume-${V1}`]);
      expect(world.leaked, JSON.stringify(crash)).toEqual([]);
    });
  });

  it('thick extend of an origin with snapshots: a retry finishes, active, at the new size', async () => {
    const src = thick(V1);
    await everyCrash(false, (d) => d.extendVolume(src, 3), async (world, driver) => {
      await driver.extendVolume(src, 3);
      expect(world.lvs.get(`volume-${V1}`)?.size).toBe(3 * GIB);
      expect(world.lvs.get(`volume-${V1}`)?.attr?.[4]).toBe('a');
    });
  });

  it('scan reports each temporary name as the leftover it is, and removeLeftover publishes a revert whose old volume is gone', async () => {
    const tagged = (name: string, id: string, extra: Partial<WorldLv> = {}): WorldLv => ({
      name, size: GIB, tags: [`kindling_id_${id}`], content: DATA, ...extra,
    });
    const world = new World([
      { ...pool, content: '' },
      tagged(`partial-${V2}`, V2),
      tagged(`clone-snap-${V2}`, V2, { origin: `volume-${V1}`, attr: 'swi-a-s---', cow: 'data:old' }),
      tagged(`volume-${V1}`, V1, { attr: 'owi-a-s---' }),
      tagged(`clear-volume-${V3}`, V3),
      tagged(`revert-${V4}`, V4, { pool: pool.name, attr: 'Vwi-a-tz--', content: SNAP }),
      { name: `partial-${V3}`, size: GIB, content: DATA },
    ]);
    const { driver } = await agentOn(world, false);
    const scan = await driver.scan();
    expect(scan.leftovers).toEqual([
      { kind: 'partial-volume', id: V2, where: `${VG}/partial-${V2}` },
      { kind: 'temp-snapshot', id: V1, where: `${VG}/clone-snap-${V2}` },
      { kind: 'pending-clear', id: V3, where: `${VG}/clear-volume-${V3}` },
      { kind: 'partial-volume', id: V4, where: `${VG}/revert-${V4}` },
    ]);
    expect(scan.strays).toEqual([{ where: `${VG}/partial-${V3}`, reason: `named as Kindling's, but without its tag kindling_id_${V3}` }]);
    for (const leftover of scan.leftovers) await driver.removeLeftover(leftover);
    expect(names(world)).toEqual([`partial-${V3}`, `volume-${V1}`, `volume-${V4}`]);
    expect(content(world, `volume-${V4}`)).toBe(SNAP);
    expect(world.leaked).toEqual([]);
    await expect(driver.removeLeftover({ kind: 'partial-volume', id: V1, where: `${VG}/volume-${V1}` })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
