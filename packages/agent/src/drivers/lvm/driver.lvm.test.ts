import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, ConflictError, type ConnectionRecord } from '@kindling/protocol';
import type { LvmBackendConfig } from '../../config.js';
import { run, type Runner } from '../../exec/run.js';
import type { SnapshotRef, VolumeRef } from '../driver.js';
import { LvmDriver } from './driver.js';
import { createLoopVg, loopVgUnavailable, type LoopVg } from '../../testing/loop-vg.js';
import { requires } from '../../testing/requirement.js';

// Real lvm2 on a loop-backed VG. Without device-mapper only metadata operations work; the rest must
// fail cleanly. The real-kernel lane runs the same driver with activation on.
const suite = requires('the real-LVM driver tests (a loop VG)', loopVgUnavailable(), describe, describe.skip);

const GIB = 1024 ** 3;

interface LvRow {
  lv_name: string;
  lv_size: string;
  lv_tags: string;
}

suite('LvmDriver on real lvm2 (loop VG, activation disabled)', () => {
  let fx: LoopVg;
  let driver: LvmDriver;
  const commands: string[][] = [];
  // Real commands, recorded so tests can tell which ones ran.
  const recording: Runner = (argv, options) => {
    commands.push([...argv]);
    return run(argv, options);
  };

  const config = (over: Partial<LvmBackendConfig> = {}): LvmBackendConfig => ({
    name: 'lvm',
    driver: 'lvm',
    volumeGroup: fx.vg,
    lvmType: 'default',
    lvmConfFile: fx.lvmConfFile,
    volumeClear: 'none',
    volumeClearMinMiBps: 8,
    // The recording runner sees every command only without the shell.
    lvmShell: false,
    reservedPercentage: 0,
    maxOverSubscriptionRatio: 20,
    targetPort: 3260,
    ...over,
  });

  const lvs = async (): Promise<LvRow[]> => {
    const { stdout } = await fx.lvm(['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size,lv_tags', fx.vg]);
    return (JSON.parse(stdout) as { report: { lv: LvRow[] }[] }).report[0]?.lv ?? [];
  };
  const lv = async (name: string): Promise<LvRow | undefined> => (await lvs()).find((r) => r.lv_name === name);
  const vgs = async (): Promise<{ size: number; free: number }> => {
    const { stdout } = await fx.lvm(['vgs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'vg_size,vg_free', fx.vg]);
    const row = (JSON.parse(stdout) as { report: { vg: { vg_size: string; vg_free: string }[] }[] }).report[0]?.vg[0];
    return { size: Number(row?.vg_size), free: Number(row?.vg_free) };
  };
  const vol = (size = 1, id = randomUUID()): VolumeRef => ({ id, size, location: {} });
  const failure = async (p: Promise<unknown>): Promise<BackendError> => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackendError);
    const details = (err as BackendError).details;
    expect(Array.isArray(details.command)).toBe(true);
    expect(details).toHaveProperty('exitCode');
    expect(typeof details.stderrTail).toBe('string');
    return err as BackendError;
  };

  beforeAll(async () => {
    fx = await createLoopVg({ sizeMiB: 4096 });
    driver = new LvmDriver(config(), { run: recording, hostId: 'host-a' });
    await driver.start();
  });

  afterAll(async () => {
    await fx?.destroy();
  });

  it('creates a thick volume that lvs shows with its size and tags', async () => {
    const v = vol(1);
    const location = await driver.createVolume(v);
    expect(location).toEqual({ vg: fx.vg, lv: `volume-${v.id}`, thin: false });
    const row = await lv(`volume-${v.id}`);
    expect(row?.lv_size).toBe(String(GIB));
    expect(row?.lv_tags.split(',').sort()).toEqual([`kindling_id_${v.id}`, 'kindling_kind_volume', 'kindling_owner_host-a/lvm']);
    await driver.deleteVolume(v);
  });

  it('runs no lvs/vgs in the create and delete path', async () => {
    const v = vol(1);
    commands.length = 0;
    await driver.createVolume(v);
    await driver.deleteVolume(v);
    expect(commands.map((c) => c[0])).toEqual(['lvcreate', 'lvremove']);
  });

  it('extends a volume', async () => {
    const v = vol(1);
    await driver.createVolume(v);
    await driver.extendVolume(v, 2);
    expect((await lv(`volume-${v.id}`))?.lv_size).toBe(String(2 * GIB));
    expect(await driver.connectionSize({ ...v, size: 2 }, {} as ConnectionRecord)).toBe(2 * GIB);
    await driver.deleteVolume(v);
  });

  it('deletes a volume, and deleting it again is not an error', async () => {
    const v = vol(1);
    await driver.createVolume(v);
    await driver.deleteVolume(v);
    expect(await lv(`volume-${v.id}`)).toBeUndefined();
    await expect(driver.deleteVolume(v)).resolves.toBeUndefined();
  });

  it('reports stats that match vgs, kept current without re-reading', async () => {
    const v = vol(1);
    await driver.createVolume(v);
    const cached = await driver.stats(false);
    const fresh = await driver.stats(true);
    const { size, free } = await vgs();
    expect(fresh.totalCapacityGb).toBe(Math.round((size / GIB) * 100) / 100);
    expect(fresh.freeCapacityGb).toBe(Math.round((free / GIB) * 100) / 100);
    expect(fresh.provisionedCapacityGb).toBe(Math.round(((size - free) / GIB) * 100) / 100);
    expect(cached.freeCapacityGb).toBe(fresh.freeCapacityGb);
    expect(fresh.thickProvisioningSupport).toBe(true);
    expect(fresh.extra?.vgMdaSizeBytes).toBeGreaterThan(0);
    await driver.deleteVolume(v);
  });

  it('refuses a volume that cannot fit before lvcreate runs', async () => {
    const v = vol(100);
    commands.length = 0;
    const err = await driver.createVolume(v).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).details).toMatchObject({ requestedGb: 100 });
    expect((err as ConflictError).details.freeGb).toBeGreaterThan(3);
    expect((err as ConflictError).details.freeGb).toBeLessThanOrEqual(4);
    expect(commands).toEqual([]);
    expect(await lv(`volume-${v.id}`)).toBeUndefined();
  });

  it('serialises concurrent creates on one VG', async () => {
    const vs = [vol(1), vol(1), vol(1)];
    await Promise.all(vs.map((v) => driver.createVolume(v)));
    const names = (await lvs()).map((r) => r.lv_name);
    for (const v of vs) expect(names).toContain(`volume-${v.id}`);
    await Promise.all(vs.map((v) => driver.deleteVolume(v)));
  });

  it('fails a snapshot cleanly without device-mapper, leaving no LV', async () => {
    const v = vol(1);
    await driver.createVolume(v);
    const snap: SnapshotRef = { id: randomUUID(), volumeId: v.id, volumeSize: 1, location: {} };
    const err = await failure(driver.createSnapshot(snap, v));
    expect(err.details.command).toEqual(expect.arrayContaining(['lvcreate', '-s', `${fx.vg}/volume-${v.id}`]));
    expect(err.details.exitCode).toBe(5);
    expect(err.details.stderrTail).toMatch(/device-mapper/);
    expect(await lv(`_snapshot-${snap.id}`)).toBeUndefined();
    await driver.deleteVolume(v);
  });

  it('fails a thick clone cleanly and leaves neither the clone nor its temporary snapshot', async () => {
    const src = vol(1);
    await driver.createVolume(src);
    const clone = vol(1);
    await failure(driver.cloneVolume(clone, src));
    const names = (await lvs()).map((r) => r.lv_name);
    expect(names).not.toContain(`volume-${clone.id}`);
    expect(names).not.toContain(`clone-snap-${clone.id}`);
    await driver.deleteVolume(src);
  });

  it('fails a copy to or from another agent cleanly without device-mapper, leaving no temporary LV', async () => {
    const src = vol(1);
    await driver.createVolume(src);
    const before = (await lvs()).map((r) => r.lv_name).sort();
    let read = false;
    await failure(driver.readVolume(src, async () => void (read = true)));
    const copy = vol(1);
    let filled = false;
    const err = await failure(driver.writeVolume(copy, GIB, async () => void (filled = true)));
    expect(err.details.command).toEqual(['lvchange', '-a', 'y', '--yes', '-K', `${fx.vg}/partial-${copy.id}`]);
    expect([read, filled]).toEqual([false, false]);
    expect((await lvs()).map((r) => r.lv_name).sort()).toEqual(before);
    await driver.deleteVolume(src);
  });

  it('fails a volume from a (missing) snapshot cleanly and removes the half-made volume', async () => {
    const src = vol(1);
    const snap: SnapshotRef = { id: randomUUID(), volumeId: src.id, volumeSize: 1, location: {} };
    const v = vol(1);
    await failure(driver.createVolumeFromSnapshot(v, snap, src));
    expect(await lv(`volume-${v.id}`)).toBeUndefined();
  });

  it('fails attach cleanly: activation makes no device here', async () => {
    const v = vol(1);
    await driver.createVolume(v);
    const err = await failure(driver.attach(v));
    expect(err.details.command).toEqual(['lvchange', '-a', 'y', '--yes', '-K', `${fx.vg}/volume-${v.id}`]);
    expect(err.details.exitCode).toBe(0);
    expect(err.details.stderrTail).toMatch(/Activation disabled/);
    await driver.deleteVolume(v);
  });

  it('fails zeroing on delete cleanly and keeps the volume', async () => {
    const zeroing = new LvmDriver(config({ volumeClear: 'zero' }), { run });
    await zeroing.start();
    const v = vol(1);
    await zeroing.createVolume(v);
    await failure(zeroing.deleteVolume(v));
    expect(await lv(`volume-${v.id}`)).toBeDefined();
    await driver.deleteVolume(v);
  });

  it('fails thin provisioning cleanly: the pool cannot be made without device-mapper', async () => {
    const thin = new LvmDriver(config({ lvmType: 'thin' }), { run });
    await thin.start();
    const v = vol(1);
    const err = await failure(thin.createVolume(v));
    expect(err.details.command).toEqual(expect.arrayContaining(['lvcreate', '-T', `${fx.vg}/${fx.vg}-pool`]));
    const names = (await lvs()).map((r) => r.lv_name);
    expect(names).not.toContain(`${fx.vg}-pool`);
    expect(names).not.toContain(`volume-${v.id}`);
  });

  it('scan() finds volumes by their tags and ignores untagged LVs', async () => {
    const a = vol(1);
    const b = vol(2);
    await driver.createVolume(a);
    await driver.createVolume(b);
    await fx.lvm(['lvcreate', '-n', 'not-ours', '-L', '8m', fx.vg]);
    const fresh = new LvmDriver(config(), { run });
    await fresh.start();
    const { volumes, snapshots } = await fresh.scan();
    expect(snapshots).toEqual([]);
    expect(volumes.sort((x, y) => x.size - y.size)).toEqual([
      { id: a.id, size: 1, location: { vg: fx.vg, lv: `volume-${a.id}`, thin: false } },
      { id: b.id, size: 2, location: { vg: fx.vg, lv: `volume-${b.id}`, thin: false } },
    ]);
    await driver.deleteVolume(a);
    await driver.deleteVolume(b);
    await fx.lvm(['lvremove', '-f', `${fx.vg}/not-ours`]);
  });

  it('two backends on one VG: a leftover is taken away only by the backend that made it', async () => {
    // Backend `a` dies while copying into its partial LV; `b`, on the same VG, restarts first.
    let dead = false;
    const dies: Runner = (argv, options) => {
      if (dead || argv[0] === 'dd') {
        dead = true;
        return Promise.reject(new Error('killed'));
      }
      return run(argv, options);
    };
    const exists = async (): Promise<boolean> => true;
    const a = new LvmDriver(config({ name: 'a', volumeClear: 'zero' }), { run: dies, hostId: 'host-a', deviceExists: exists });
    await a.start();
    const src = vol(1);
    await driver.createVolume(src);
    // A snapshot needs device-mapper: an LV under its name stands in, as the copy never reads it here.
    const snap: SnapshotRef = { id: randomUUID(), volumeId: src.id, volumeSize: 1, location: { thin: false } };
    await fx.lvm(['lvcreate', '-n', `_snapshot-${snap.id}`, '-L', '8m', fx.vg]);
    const made = vol(1);
    await expect(a.createVolumeFromSnapshot(made, snap, { ...src, location: { thin: false } })).rejects.toThrow('killed');
    expect(await lv(`partial-${made.id}`)).toBeDefined();

    const b = new LvmDriver(config({ name: 'b', volumeClear: 'zero' }), { run, hostId: 'host-a', deviceExists: exists });
    await b.start();
    const seen = await b.scan();
    expect(seen.leftovers).toEqual([]);
    expect(seen.strays).toContainEqual({ where: `${fx.vg}/partial-${made.id}`, reason: 'a leftover of host-a/a, not of this backend: left to its owner' });
    await expect(b.removeLeftover({ kind: 'partial-volume', id: made.id, where: `${fx.vg}/partial-${made.id}` })).rejects.toThrow(/not a leftover of this backend/);
    expect(await lv(`partial-${made.id}`)).toBeDefined();

    // Its owner, restarted, finds it as its own.
    const again = new LvmDriver(config({ name: 'a', volumeClear: 'none' }), { run, hostId: 'host-a', deviceExists: exists });
    await again.start();
    const own = await again.scan();
    expect(own.leftovers).toEqual([{ kind: 'partial-volume', id: made.id, where: `${fx.vg}/partial-${made.id}` }]);
    for (const leftover of own.leftovers) await again.removeLeftover(leftover);
    expect(await lv(`partial-${made.id}`)).toBeUndefined();
    await fx.lvm(['lvremove', '-f', `${fx.vg}/_snapshot-${snap.id}`]);
    await driver.deleteVolume(src);
  });

  it('never gives a thick LV the extents a revert holds back (a kindling_cow_ tag), even across a restart', async () => {
    // A volume whose snapshot's old COW store (the next 64 free extents) is between merge and re-pin.
    const v = vol(1);
    await driver.createVolume(v);
    const ranges = async (name: string): Promise<string[]> =>
      (await fx.lvm(['lvs', '--noheadings', '-o', 'seg_pe_ranges', `${fx.vg}/${name}`])).stdout.trim().split(/\s+/);
    const [volumeRange] = await ranges(`volume-${v.id}`);
    const end = Number(volumeRange?.split('-')[1]);
    const held = `${fx.device}:${end + 1}-${end + 64}`;
    await fx.lvm(['lvchange', '--addtag', `kindling_cow_${held}`, `${fx.vg}/volume-${v.id}`]);
    const restarted = new LvmDriver(config(), { run, hostId: 'host-a' });
    await restarted.start();
    const next = vol(1);
    await restarted.createVolume(next);
    const extents = (r: string): number[] => {
      const [first, last] = r.split(':')[1]!.split('-').map(Number);
      return Array.from({ length: last! - first! + 1 }, (_, i) => first! + i);
    };
    const taken = new Set((await ranges(`volume-${next.id}`)).flatMap(extents));
    expect(extents(held).filter((pe) => taken.has(pe))).toEqual([]);
    await restarted.deleteVolume(next);
    await fx.lvm(['lvchange', '--deltag', `kindling_cow_${held}`, `${fx.vg}/volume-${v.id}`]);
    await driver.deleteVolume(v);
    // The shared reservations follow storage: the next refresh drops what the tag no longer says.
    await driver.stats(true);
  });

  it('is ready while its VG is visible', async () => {
    await expect(driver.readiness()).resolves.toEqual({ ready: true });
  });

  it('refuses to start on a missing VG and says why in readiness', async () => {
    const missing = new LvmDriver(config({ volumeGroup: `kindling-missing-${randomUUID()}` }), { run });
    const err = await failure(missing.start());
    expect(err.message).toMatch(/not found/);
    const readiness = await missing.readiness();
    expect(readiness.ready).toBe(false);
    expect(readiness.reason).toMatch(/not found/);
  });
});
