// The recording runner the LVM driver's unit tests share: the only fake runner allowed, for paths this
// kernel cannot run (snapshots, thin, activation, dd, targetcli). Argv is checked exactly.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendError, type ConnectionInfo, type ConnectionRecord, type ConnectorInfo } from '@kindling/protocol';
import type { LvmBackendConfig } from '../config.js';
import type { RunOptions, Runner } from '../exec/run.js';
import type { SnapshotRef, VolumeRef } from '../drivers/driver.js';
import { LvmDriver } from '../drivers/lvm/driver.js';

export const GIB = 1024 ** 3;
export const EXTENT = 4 * 1024 * 1024;
export const VG = 'cinder-volumes';
// start() checks that lvmConfFile is readable; the commands themselves never run here.
export const CONF_DIR = mkdtempSync(join(tmpdir(), 'kindling-lvm-unit-'));
writeFileSync(join(CONF_DIR, 'lvm.conf'), 'global { activation = 0 }\n');
/** For a test file's afterAll: the lvm.conf folder goes. */
export const removeConfDir = (): void => rmSync(CONF_DIR, { recursive: true, force: true });
// LIO's configfs as far as the driver writes it: targetcli's `acls create` makes the ACL's auth folder.
export const CONFIGFS = join(CONF_DIR, 'configfs');
export const aclAuth = (iqn: string, initiator: string): string => join(CONFIGFS, 'iscsi', iqn, 'tpgt_1', 'acls', initiator, 'auth');
export const V1 = '11111111-1111-4111-8111-111111111111';
export const V2 = '22222222-2222-4222-8222-222222222222';
export const V3 = '33333333-3333-4333-8333-333333333333';
export const V4 = '44444444-4444-4444-8444-444444444444';
export const S1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';

export interface FakeLv {
  name: string;
  size: number;
  tags?: string[];
  attr?: string;
  origin?: string;
  pool?: string;
  data?: number;
  meta?: number;
}

export interface Fake {
  run: Runner;
  calls: { argv: string[]; env: Record<string, string> }[];
  /** Commands after start()'s report read. */
  argv(): string[][];
  reset(): void;
}

/** `lvm fullreport --reportformat json` output for these LVs. */
export function reportJson(lvs: FakeLv[], opts: { vgSize?: number; vgFree?: number; mdaFree?: number } = {}): string {
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

export interface FakeOptions {
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

export function fake(opts: FakeOptions = {}): Fake {
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
    // One LV's lookup (or where its extents lie): as the report lists it, or lvm2's "not found".
    if (argv[0] === 'lvs') {
      const lv = (opts.lvs ?? []).find((l) => argv.at(-1) === `${VG}/${l.name}`);
      if (!lv) throw new BackendError('lvs failed', { command: [...argv], exitCode: 5, stderrTail: `  Failed to find logical volume "${argv.at(-1)}"` });
      return { stdout: argv.includes('seg_pe_ranges') ? '  /dev/pv0:256-511\n' : reportJson([lv]), stderr: '' };
    }
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

export const config = (over: Partial<LvmBackendConfig> = {}): LvmBackendConfig => ({
  name: 'lvm',
  driver: 'lvm',
  volumeGroup: VG,
  lvmType: 'default',
  lvmConfFile: join(CONF_DIR, 'lvm.conf'),
  volumeClear: 'none',
  volumeClearMinMiBps: 8,
  // A fake (or recording) runner sees every command only without the shell.
  lvmShell: false,
  reservedPercentage: 0,
  maxOverSubscriptionRatio: 20,
  targetIp: '192.0.2.10',
  targetPort: 3260,
  ...over,
});

export async function started(f: Fake, over: Partial<LvmBackendConfig> = {}): Promise<LvmDriver> {
  const driver = new LvmDriver(config(over), {
    run: f.run, hostId: 'host-a', hostname: 'agent-host', deviceExists: async () => true, configfs: CONFIGFS, sleep: async () => undefined,
  });
  await driver.start();
  f.reset();
  return driver;
}

export const thick = (id: string, size = 1): VolumeRef => ({ id, size, location: { vg: VG, lv: `volume-${id}`, thin: false } });
export const thinVol = (id: string, size = 1): VolumeRef => ({ id, size, location: { vg: VG, lv: `volume-${id}`, thin: true } });
export const snapOf = (v: VolumeRef, id = S1): SnapshotRef => ({
  id,
  volumeId: v.id,
  volumeSize: v.size,
  location: { vg: VG, lv: `_snapshot-${id}`, thin: v.location.thin ?? false },
});
/** This test agent's owner tag (host id `host-a`, backend `lvm`): on every LV it makes. */
export const OWNER = 'kindling_owner_host-a/lvm';
export const volTags = (id: string): string[] => ['--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_volume', '--addtag', OWNER];
export const snapTags = (id: string, vol: string): string[] => [
  '--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_snapshot', '--addtag', `kindling_vol_${vol}`, '--addtag', OWNER,
];
export const cloneTags = (id: string): string[] => ['--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_clone-snap', '--addtag', OWNER];
export const REMOVE = ['lvremove', '--config', 'activation { retry_deactivation = 1 }', '-f'];
export const ACTIVATE = ['lvchange', '-a', 'y', '--yes', '-K'];
export const pool = { name: `${VG}-pool`, size: 90 * GIB, attr: 'twi-aotz--', data: 12.5, meta: 3.25 };
/** The one-LV lookup the driver runs (`lvs` of one LV, every report field). */
export const LOOKUP = ['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size,lv_tags,lv_attr,origin,pool_lv,data_percent,metadata_percent'];

export const INITIATOR = 'iqn.1993-08.org.debian:01:abcdef';
export const INITIATOR2 = 'iqn.1993-08.org.debian:01:123456';
export const IQN = `iqn.2010-10.org.openstack:volume-${V1}`;

export function conn(connectorInfo: ConnectorInfo, connectionInfo: ConnectionInfo): ConnectionRecord {
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

/** A promise to hold a command with, and the way to let it go. */
export function gate(): { promise: Promise<void>; open: () => void; reached: Promise<void>; arrive: () => void } {
  let open = (): void => undefined;
  let arrive = (): void => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  return { promise, open, reached, arrive };
}
