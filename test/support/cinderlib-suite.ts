// cinderlib's functional suite (cinderlib/tests/functional/test_basic.py) and the seed's snapshot snippets
// (shared/seed-snapshots.txt) over the SDK, written once for every place a backend really runs: the host
// (test/cinderlib-functional.test.ts: NFS on a local folder, qcow2 and raw) and the real-kernel lane
// (test-kernel/cinderlib-*.test.ts: LVM thick, LVM thin, a mounted NFS share in a qemu guest). The SDK drives
// the agent; every data and storage check runs where the storage is, through the backend's StorageProbe.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, type Agent, type Backend, type Connection, type Volume } from '@kindling/sdk';
import {
  GiB,
  ddWriteSample,
  fsFigures,
  holdsSample,
  imageInfo,
  isActive,
  ls,
  lv,
  lvs,
  mustRun,
  readerSize,
  readsPattern,
  testPath,
  vgFigures,
  volumeFiles,
  whileAttached,
  writePattern,
  type LvRow,
  type StorageLayout,
  type StorageProbe,
} from './storage-probe.js';

const A = 0xab;
const B = 0xcd;
const C = 0x5e;
/** The last 4 MiB of a 1 GiB volume: a copy that stops short of the end misses it. */
const END = `${1024 - 4}M`;

export interface SuiteOptions {
  /** Also export a volume over iSCSI to another host's connector (LVM; ~2 s per targetcli call in TCG). */
  iscsi?: boolean;
}

/** Connects to the probe's agent and removes, after each test, what that test created. */
function useBackend(probe: StorageProbe) {
  const ctx = {
    agent: undefined as unknown as Agent,
    backend: undefined as unknown as Backend,
    /** Every volume id made here, for the final check that storage holds none of them. */
    everCreated: [] as string[],
  };
  let created: Volume[] = [];

  beforeAll(async () => {
    await probe.setUp?.();
    ctx.agent = await probe.connect();
    ctx.backend = await ctx.agent.backend(probe.backend);
  });

  // cinderlib's tearDown: detach, delete snapshots, delete volumes (newest first: clones before sources).
  afterEach(async () => {
    const vols = created.reverse();
    created = [];
    for (const vol of vols) {
      if (vol.status === 'deleted') continue;
      await vol.refresh(); // another connection may have changed it
      for (const conn of [...vol.connections]) await conn.disconnect();
      for (const snap of [...vol.snapshots]) await snap.delete();
      await vol.delete();
    }
  });

  afterAll(async () => {
    try {
      if (ctx.backend) expect(await leftOnStorage(probe, ctx.everCreated)).toEqual([]);
    } finally {
      await ctx.agent?.close();
      await probe.tearDown?.();
    }
  });

  return {
    ctx,
    /** cinderlib's _create_vol: a volume that the tear-down removes. */
    async createVol(size = 1): Promise<Volume> {
      return track(await ctx.backend.createVolume({ size }));
    },
    track,
  };

  function track(vol: Volume): Volume {
    created.push(vol);
    ctx.everCreated.push(vol.id);
    return vol;
  }
}

/**
 * Volume and snapshot LVs or files left on the backend's storage (its VG or folder is this suite's alone),
 * and anything else named after a volume made here (a clone's or revert's temporary).
 */
async function leftOnStorage(probe: StorageProbe, ids: string[]): Promise<string[]> {
  const { layout, run } = probe;
  const names = layout.driver === 'lvm' ? (await lvs(run, layout.vg)).map((l) => l.lv_name) : await ls(run, layout.folder);
  return names.filter((n) => /^(volume-|_snapshot-)/.test(n) || ids.some((id) => n.includes(id)));
}

const lvName = (vol: { id: string }): string => `volume-${vol.id}`;
const snapLvName = (snap: { id: string }): string => `_snapshot-${snap.id}`;

/** The attached path the driver must hand back: the LV's device node, or the active file in the folder. */
function expectedPath(layout: StorageLayout, vol: Volume, activeFile = `volume-${vol.id}`): string {
  return layout.driver === 'lvm' ? `/dev/${layout.vg}/${lvName(vol)}` : `${layout.folder}/${activeFile}`;
}

/**
 * Makes a 2 GiB volume on the storage behind the agent's back, as another agent sharing it or an operator
 * would (a volume file on the share; an LV in the VG, thin: in the pool); returns its removal.
 */
async function makeStray({ layout, run }: StorageProbe): Promise<() => Promise<void>> {
  if (layout.driver === 'nfs') {
    const file = `${layout.folder}/volume-${randomUUID()}`;
    await mustRun(run, ['qemu-img', 'create', '-q', '-f', layout.format, file, '2G']);
    return async () => void (await mustRun(run, ['rm', file]));
  }
  const name = `stray-${randomUUID()}`;
  const where = layout.pool ? ['-V', '2G', '-T', `${layout.vg}/${layout.pool}`] : ['-L', '2G', layout.vg];
  await mustRun(run, ['lvcreate', '-q', '-y', '-n', name, ...where]);
  return async () => void (await mustRun(run, ['lvremove', '-q', '-y', `${layout.vg}/${name}`]));
}

export function cinderlibSuite(probe: StorageProbe, options: SuiteOptions = {}): void {
  describe(`cinderlib functional suite on ${probe.backend} (${probe.where})`, () => {
    const { ctx, createVol, track } = useBackend(probe);
    const { layout, run } = probe;
    const lvm = layout.driver === 'lvm';
    /** The LV report of a volume or snapshot (LVM backends). */
    async function lvOf(name: string): Promise<LvRow | undefined> {
      if (layout.driver !== 'lvm') throw new Error(`${probe.backend} has no LVs`);
      return lv(run, layout.vg, name);
    }
    /** Extends an attached 1 GiB volume holding A to 2 GiB: in-use still, the connection sees the new size, the data stays. */
    async function extendsAttached(vol: Volume, conn: Connection): Promise<void> {
      await vol.extend(2);
      expect(vol.size).toBe(2);
      expect(vol.status).toBe('in-use');
      expect(await conn.extend()).toBe(2 * GiB);
      expect(await readerSize(run, conn)).toBe(2 * GiB);
      expect(await readsPattern(run, conn, A)).toBe(true);
    }
    /** Writes `pattern` over the first and the last 4 MiB of a 1 GiB volume. */
    const writeEnds = (vol: Volume, pattern: number): Promise<void> =>
      whileAttached(vol, async (conn) => {
        await writePattern(run, conn, pattern);
        await writePattern(run, conn, pattern, END);
      });
    /** True when the first and the last 4 MiB of a 1 GiB volume read as `pattern`. */
    const readsEnds = async (conn: Connection, pattern: number): Promise<boolean> =>
      (await readsPattern(run, conn, pattern)) && (await readsPattern(run, conn, pattern, END));

    it('stats: driver, protocol and capacity figures match the storage’s', async () => {
      const stats = await ctx.backend.stats({ refresh: true });
      expect(stats).toMatchObject({
        backendName: probe.backend,
        driver: layout.driver,
        storageProtocol: lvm ? 'iSCSI' : 'nfs',
        thinProvisioningSupport: layout.thin,
        thickProvisioningSupport: !layout.thin,
      });
      expect(stats.vendorName).toEqual(expect.any(String));
      let total: number;
      let free: number;
      if (layout.driver === 'lvm' && layout.pool) {
        const pool = (await lvOf(layout.pool))!;
        total = Number(pool.lv_size) / GiB;
        free = total * (1 - Number(pool.data_percent) / 100);
      } else if (layout.driver === 'lvm') {
        const vg = await vgFigures(run, layout.vg);
        [total, free] = [vg.size / GiB, vg.free / GiB];
      } else {
        const fs = await fsFigures(run, layout.folder);
        [total, free] = [fs.total / GiB, fs.avail / GiB];
      }
      expect(Math.abs(stats.totalCapacityGb - total)).toBeLessThan(0.02);
      expect(Math.abs(stats.freeCapacityGb - free)).toBeLessThan(0.1);
      expect(stats.freeCapacityGb).toBeGreaterThan(0);
      expect(stats.freeCapacityGb).toBeLessThanOrEqual(stats.totalCapacityGb);
    });

    it('stats with creation: the volume count and provisioned size grow; cached stats follow the agent’s own changes', async () => {
      const initial = await ctx.backend.stats({ refresh: true });
      await createVol(1);
      // cinderlib asserts that the cached stats are the old ones. Here the agent keeps its cache current
      // for what it does itself, so the cached figures already show the new volume, as a refresh does.
      const cached = await ctx.backend.stats();
      const refreshed = await ctx.backend.stats({ refresh: true });
      for (const stats of [cached, refreshed]) {
        expect(stats.totalVolumes).toBe(initial.totalVolumes + 1);
        expect(stats.provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb + 1, 2);
      }
      if (!layout.thin) expect(refreshed.freeCapacityGb).toBeCloseTo(initial.freeCapacityGb - 1, 1);
    });

    it('stats cached vs refresh: storage changed behind the agent’s back shows only on refresh', async () => {
      const initial = await ctx.backend.stats({ refresh: true });
      const removeStray = await makeStray(probe);
      try {
        expect((await ctx.backend.stats()).provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb, 2);
        expect((await ctx.backend.stats({ refresh: true })).provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb + 2, 2);
      } finally {
        await removeStray();
      }
      expect((await ctx.backend.stats({ refresh: true })).provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb, 2);
    });

    it('create volume: available, and on storage with its size', async () => {
      const vol = await createVol(1);
      expect(vol.status).toBe('available');
      expect(vol.size).toBe(1);
      if (layout.driver === 'lvm') {
        const row = await lvOf(lvName(vol));
        expect(row, `LV ${lvName(vol)} in ${layout.vg}`).toBeDefined();
        expect(Number(row!.lv_size)).toBe(1 * GiB);
        expect(row!.lv_tags).toContain(`kindling_id_${vol.id}`);
        expect(row!.pool_lv).toBe(layout.thin ? layout.pool : '');
        expect(row!.lv_attr[0]).toBe(layout.thin ? 'V' : '-');
      } else {
        expect(await volumeFiles(run, layout, vol)).toEqual([`volume-${vol.id}`]);
        const info = await imageInfo(run, `${layout.folder}/volume-${vol.id}`);
        expect(info).toMatchObject({ format: layout.format, 'virtual-size': 1 * GiB });
      }
      expect((await ctx.backend.volumes()).map((v) => v.id)).toContain(vol.id);
    });

    it('create and delete volume: deleted, gone from the listing and from storage', async () => {
      const vol = await createVol(1);
      await vol.delete();
      expect(vol.status).toBe('deleted');
      expect((await ctx.backend.volumes()).map((v) => v.id)).not.toContain(vol.id);
      expect(await ctx.backend.volumesFiltered({ volumeId: vol.id })).toEqual([]);
      if (layout.driver === 'lvm') expect(await lvOf(lvName(vol))).toBeUndefined();
      else expect(await volumeFiles(run, layout, vol)).toEqual([]);
    });

    it('create snapshot: available, tracked in vol.snapshots, a real snapshot on storage', async () => {
      const vol = await createVol(1);
      const snap = await vol.createSnapshot({ name: 'snap-1' });
      expect(snap.status).toBe('available');
      expect(snap.volumeSize).toBe(1);
      expect(snap.volume).toBe(vol);
      expect([...vol.snapshots]).toEqual([snap]);
      const [listed] = await ctx.backend.volumesFiltered({ volumeId: vol.id });
      expect([...listed!.snapshots].map((s) => s.id)).toEqual([snap.id]);
      if (layout.driver === 'lvm') {
        const row = await lvOf(snapLvName(snap));
        expect(row, `snapshot LV ${snapLvName(snap)}`).toBeDefined();
        expect(row!.origin).toBe(lvName(vol));
        // thick: a COW snapshot ('s') of its origin's size; thin: a thin volume in the pool
        expect(row!.lv_attr[0]).toBe(layout.thin ? 'V' : 's');
        expect(row!.pool_lv).toBe(layout.thin ? layout.pool : '');
        expect(row!.lv_tags).toContain(`kindling_vol_${vol.id}`);
      } else {
        expect(await volumeFiles(run, layout, vol)).toEqual(
          [`volume-${vol.id}`, `volume-${vol.id}.${snap.id}`, `volume-${vol.id}.info`].sort(),
        );
      }
    });

    it('create and delete snapshot: deleted, gone from vol.snapshots and storage, the volume intact', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(run, conn, A));
      const snap = await vol.createSnapshot();
      await snap.delete();
      expect(snap.status).toBe('deleted');
      expect(vol.snapshots.has(snap)).toBe(false);
      await vol.refresh();
      expect(vol.snapshots.size).toBe(0);
      expect(vol.status).toBe('available');
      if (layout.driver === 'lvm') {
        expect(await lvOf(snapLvName(snap))).toBeUndefined();
        expect(await lvOf(lvName(vol))).toBeDefined();
      } else {
        // the overlay was committed into the base file and removed
        expect((await volumeFiles(run, layout, vol)).filter((n) => n.includes(snap.id))).toEqual([]);
        expect((await imageInfo(run, `${layout.folder}/volume-${vol.id}`, layout.format))['virtual-size']).toBe(1 * GiB);
      }
      await whileAttached(vol, async (conn) => {
        expect(conn.path).toBe(expectedPath(layout, vol));
        expect(await readsPattern(run, conn, A)).toBe(true);
      });
    });

    it('attach: a local connection whose path is the real device or file, the volume in-use', async () => {
      const vol = await createVol(1);
      const conn = await vol.attach();
      expect(conn.attached).toBe(true);
      expect(conn.volume).toBe(vol);
      expect(vol.connections).toContain(conn);
      expect(vol.status).toBe('in-use');
      expect(conn.path).toBe(expectedPath(layout, vol));
      if (layout.driver === 'lvm') {
        expect(conn.connectionInfo.driverVolumeType).toBe('local');
        expect(await testPath(run, '-b', conn.path!)).toBe(true);
        expect(isActive((await lvOf(lvName(vol)))!)).toBe(true);
      } else {
        expect(conn.connectionInfo.driverVolumeType).toBe('nfs');
        expect(conn.connectionInfo.data.format).toBe(layout.format);
        expect(await testPath(run, '-f', conn.path!)).toBe(true);
        // the lane's file is on the agent's own NFS mount of 127.0.0.1:/export
        if (layout.nfsMounted) expect((await fsFigures(run, conn.path!)).type).toBe('nfs');
      }
      expect(await readerSize(run, conn)).toBe(1 * GiB);
      // the tear-down detaches it, as cinderlib's does
    });

    it('attach and detach: the connection is gone, the volume available again (LVM: the LV deactivated)', async () => {
      const vol = await createVol(1);
      const conn = await vol.attach();
      expect(vol.connections).toContain(conn);
      await vol.detach();
      expect(vol.connections).not.toContain(conn);
      expect(conn.attached).toBe(false);
      expect(vol.status).toBe('available');
      await vol.refresh();
      expect(vol.connections).toEqual([]);
      expect(vol.status).toBe('available');
      if (lvm) {
        expect(isActive((await lvOf(lvName(vol)))!)).toBe(false);
        expect(await testPath(run, '-e', conn.path!)).toBe(false);
      }
    });

    it('attach and detach via the connection: conn.disconnect()', async () => {
      const vol = await createVol(1);
      const conn = await vol.attach();
      expect(conn.attached).toBe(true);
      expect(await testPath(run, '-e', conn.path!)).toBe(true);
      await conn.disconnect();
      expect(conn.attached).toBe(false);
      expect(vol.connections).not.toContain(conn);
      expect(vol.status).toBe('available');
      await vol.refresh();
      expect(vol.connections).toEqual([]);
      if (lvm) expect(isActive((await lvOf(lvName(vol)))!)).toBe(false);
    });

    it('disk I/O: what is written through the attached path reads back, also after a new attach', async () => {
      const vol = await createVol(1);
      let sample = '';
      await whileAttached(vol, async (conn) => {
        // A new volume reads zeros: thin LVs and image files start empty, and a thick LV's extents were
        // zeroed when the volume or snapshot that held them was deleted (volumeClear 'zero', the default).
        expect(await readsPattern(run, conn, 0)).toBe(true);
        expect(await readsPattern(run, conn, A)).toBe(false);
        await writePattern(run, conn, A);
        await writePattern(run, conn, B, END);
        expect(await readsPattern(run, conn, A)).toBe(true);
        expect(await readsPattern(run, conn, B, END)).toBe(true);
        // a device also takes plain dd (direct I/O) from coreutils
        if (lvm) sample = await ddWriteSample(run, conn.path!, 64, 8);
      });
      try {
        await whileAttached(vol, async (conn) => {
          expect(await readsPattern(run, conn, A)).toBe(true);
          expect(await readsPattern(run, conn, B, END)).toBe(true);
          if (lvm) expect(await holdsSample(run, conn.path!, 64, sample)).toBe(true);
        });
      } finally {
        if (sample) await mustRun(run, ['rm', '-f', sample]);
      }
    });

    it('extend, through a separately loaded copy in another connection: the size grows on storage, the data stays', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, async (conn) => {
        await writePattern(run, conn, A);
        expect(await readerSize(run, conn)).toBe(1 * GiB);
      });
      const agent2 = await probe.connect();
      try {
        const copy = agent2.load(vol.dumps);
        expect(copy).not.toBe(vol);
        expect(copy.id).toBe(vol.id);
        await copy.extend(2);
        expect(copy.size).toBe(2);
      } finally {
        await agent2.close();
      }
      await vol.refresh();
      expect(vol.size).toBe(2);
      expect(vol.status).toBe('available');
      if (lvm) expect(Number((await lvOf(lvName(vol)))!.lv_size)).toBe(2 * GiB);
      await whileAttached(vol, async (conn) => {
        expect(await readerSize(run, conn)).toBe(2 * GiB);
        expect(await readsPattern(run, conn, A)).toBe(true);
        if (layout.thin) expect(await readsPattern(run, conn, 0, '1G')).toBe(true); // thick: old extents
      });
    });

    it('extend a volume that has a snapshot: grows (a thick origin is deactivated to grow), the snapshot kept', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(run, conn, A));
      const snap = await vol.createSnapshot();
      await vol.extend(2);
      expect(vol.size).toBe(2);
      expect(vol.status).toBe('available');
      expect(snap.status).toBe('available');
      if (lvm) {
        expect(Number((await lvOf(lvName(vol)))!.lv_size)).toBe(2 * GiB);
        expect((await lvOf(snapLvName(snap)))!.origin).toBe(lvName(vol));
      }
      await whileAttached(vol, async (conn) => {
        expect(await readerSize(run, conn)).toBe(2 * GiB);
        expect(await readsPattern(run, conn, A)).toBe(true);
        await writePattern(run, conn, B, '1G'); // the grown part is usable
        expect(await readsPattern(run, conn, B, '1G')).toBe(true);
      });
    });

    it('extend attached: the size grows, the volume stays in-use, conn.extend() returns the new size in bytes', async () => {
      const vol = await createVol(1);
      const conn = await vol.attach();
      await writePattern(run, conn, A);
      expect(await readerSize(run, conn)).toBe(1 * GiB);
      await extendsAttached(vol, conn);
      await vol.detach();
      expect(vol.status).toBe('available');
      expect(vol.size).toBe(2);
    });

    it('snapshots of an attached volume: taken and deleted on LVM; refused on NFS (capability snapshotInUse)', async () => {
      const caps = await ctx.backend.capabilities();
      expect(caps.snapshotInUse).toBe(lvm);
      const vol = await createVol(1);
      const conn = await vol.attach();
      await writePattern(run, conn, A);
      if (caps.snapshotInUse) {
        const snap = await vol.createSnapshot();
        expect(snap.status).toBe('available');
        expect(vol.status).toBe('in-use');
        await writePattern(run, conn, B); // the attached device keeps taking writes
        const other = await vol.createSnapshot();
        await other.delete();
        expect(await lvOf(snapLvName(other))).toBeUndefined();
        expect([...vol.snapshots]).toEqual([snap]);
        expect(await readsPattern(run, conn, B)).toBe(true);
        return;
      }
      if (layout.driver !== 'nfs') throw new Error('only the NFS driver refuses snapshots in use');
      const files = await volumeFiles(run, layout, vol);
      const err = await vol.createSnapshot().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as ConflictError).details).toMatchObject({ feature: 'snapshotInUse' });
      expect(vol.snapshots.size).toBe(0);
      expect(vol.status).toBe('in-use');
      expect(await volumeFiles(run, layout, vol)).toEqual(files);
      // a snapshot taken while detached cannot be deleted while attached either
      await vol.detach();
      const snap = await vol.createSnapshot();
      const again = await vol.attach();
      const delErr = await snap.delete().catch((e: unknown) => e);
      expect(delErr).toBeInstanceOf(ConflictError);
      expect((delErr as ConflictError).details).toMatchObject({ feature: 'snapshotInUse' });
      expect(snap.status).toBe('available');
      expect([...vol.snapshots]).toEqual([snap]);
      expect(again.path).toBe(expectedPath(layout, vol, `volume-${vol.id}.${snap.id}`));
      expect(await readsPattern(run, again, A)).toBe(true);
    });

    it('extend attached with a snapshot: refused on thick LVM (capability extendInUseWithSnapshots), else grows', async () => {
      const caps = await ctx.backend.capabilities();
      expect(caps.extendInUseWithSnapshots).toBe(layout.thin);
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(run, conn, A));
      const snap = await vol.createSnapshot();
      const conn = await vol.attach();
      if (!caps.extendInUseWithSnapshots) {
        const err = await vol.extend(2).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConflictError);
        expect((err as ConflictError).code).toBe('CONFLICT');
        expect((err as ConflictError).details).toMatchObject({ feature: 'extendInUseWithSnapshots' });
        expect(vol.size).toBe(1);
        expect(vol.status).toBe('in-use');
        await vol.refresh();
        expect(vol.size).toBe(1);
        expect(vol.status).toBe('in-use');
        const row = await lvOf(lvName(vol));
        expect(Number(row!.lv_size)).toBe(1 * GiB);
        expect(isActive(row!)).toBe(true);
        expect(await readerSize(run, conn)).toBe(1 * GiB);
        expect(await readsPattern(run, conn, A)).toBe(true);
        // detached, the same extend goes through (deactivate, grow, reactivate)
        await vol.detach();
        await vol.extend(2);
        expect(vol.size).toBe(2);
        expect(snap.status).toBe('available');
        return;
      }
      await extendsAttached(vol, conn);
      expect(snap.status).toBe('available');
    });

    it('clone: same size, same data end to end, its own copy, no temporary snapshot left', async () => {
      const vol = await createVol(1);
      await writeEnds(vol, A);
      const clone = track(await vol.clone());
      expect(clone.id).not.toBe(vol.id);
      expect(clone.size).toBe(1);
      expect(clone.sourceVolId).toBe(vol.id);
      expect(clone.snapshotId).toBeNull();
      expect(clone.status).toBe('available');
      await whileAttached(clone, async (conn) => {
        expect(conn.path).toBe(expectedPath(layout, clone));
        expect(await readerSize(run, conn)).toBe(1 * GiB);
        expect(await readsEnds(conn, A)).toBe(true);
        await writePattern(run, conn, B); // the clone is its own copy
      });
      await whileAttached(vol, async (conn) => expect(await readsPattern(run, conn, A)).toBe(true));
      await vol.refresh();
      expect(vol.snapshots.size).toBe(0);
      if (layout.driver === 'lvm') {
        // Snapshots of this volume or its clone only (a thin clone is itself a thin snapshot of its source):
        // other scenarios on the same VG may hold snapshots of their own right now.
        const origins = [lvName(vol), lvName(clone)];
        const left = (await lvs(run, layout.vg)).filter((l) => origins.includes(l.origin) && l.lv_name !== lvName(clone));
        expect(left.map((l) => l.lv_name)).toEqual([]);
      } else {
        expect((await volumeFiles(run, layout, vol)).filter((n) => n.includes('tmp-snap'))).toEqual([]);
      }
    });

    it('create volume from snapshot: the data as it was at snapshot time, snapshotId recorded', async () => {
      const vol = await createVol(1);
      await writeEnds(vol, A);
      const snap = await vol.createSnapshot();
      expect(snap.volumeSize).toBe(1);
      await writeEnds(vol, B);
      const fromSnap = track(await snap.createVolume());
      expect(fromSnap.size).toBe(1);
      expect(fromSnap.snapshotId).toBe(snap.id);
      expect(fromSnap.sourceVolId).toBeNull();
      expect(fromSnap.status).toBe('available');
      await whileAttached(fromSnap, async (conn) => {
        expect(await readerSize(run, conn)).toBe(1 * GiB);
        expect(await readsEnds(conn, A)).toBe(true);
      });
      await whileAttached(vol, async (conn) => {
        expect(await readsEnds(conn, B)).toBe(true);
      });
    });

    it('create a larger volume from a snapshot: the snapshot’s data, then room up to the new size', async () => {
      const vol = await createVol(1);
      await writeEnds(vol, A);
      const snap = await vol.createSnapshot();
      const bigger = track(await snap.createVolume({ size: 2 }));
      expect(bigger.size).toBe(2);
      if (lvm) expect(Number((await lvOf(lvName(bigger)))!.lv_size)).toBe(2 * GiB);
      await whileAttached(bigger, async (conn) => {
        expect(await readerSize(run, conn)).toBe(2 * GiB);
        expect(await readsEnds(conn, A)).toBe(true);
        if (layout.thin) expect(await readsPattern(run, conn, 0, '1G')).toBe(true); // thick: old extents
        await writePattern(run, conn, B, `${2048 - 4}M`);
        expect(await readsPattern(run, conn, B, `${2048 - 4}M`)).toBe(true);
      });
    });

    it('revert to snapshot: the data goes back to the snapshot’s, and again after new writes; the snapshot kept', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(run, conn, A));
      const snap = await vol.createSnapshot();
      await whileAttached(vol, (conn) => writePattern(run, conn, B));
      await vol.revertToSnapshot(snap);
      expect(vol.status).toBe('available');
      expect(snap.status).toBe('available');
      await whileAttached(vol, async (conn) => {
        expect(await readsPattern(run, conn, A)).toBe(true);
        expect(await readsPattern(run, conn, B)).toBe(false);
        await writePattern(run, conn, C);
      });
      // the snapshot is still there and still holds A. Thick LVM: merged into the volume, then taken again
      // (a snapshot of the volume); thin LVM: the volume was rebuilt as a thin snapshot of the snapshot.
      if (layout.driver === 'lvm' && !layout.thin) expect((await lvOf(snapLvName(snap)))?.origin).toBe(lvName(vol));
      if (layout.driver === 'lvm' && layout.thin) {
        expect(await lvOf(snapLvName(snap))).toBeDefined();
        expect((await lvOf(lvName(vol)))?.origin).toBe(snapLvName(snap));
      }
      await vol.revertToSnapshot(snap);
      await whileAttached(vol, async (conn) => {
        expect(await readsPattern(run, conn, A)).toBe(true);
        expect(await readsPattern(run, conn, C)).toBe(false);
      });
      await vol.refresh();
      expect([...vol.snapshots].map((s) => s.id)).toEqual([snap.id]);
      const again = track(await snap.createVolume());
      await whileAttached(again, async (conn) => expect(await readsPattern(run, conn, A)).toBe(true));
    });

    if (options.iscsi) {
      it('connect to another host over iSCSI: a LIO target with the LV as its LUN and an ACL; removed on disconnect', async () => {
        if (layout.driver !== 'lvm') throw new Error('iSCSI exports are LVM volumes');
        const vol = await createVol(1);
        const initiator = 'iqn.2024-01.org.kindling:other-host';
        const conn: Connection = await vol.connect({ initiator, host: 'other-host' });
        const iqn = `iqn.2010-10.org.openstack:${lvName(vol)}`;
        expect(conn.path).toBeNull();
        expect(conn.connectionInfo.driverVolumeType).toBe('iscsi');
        expect(conn.connectionInfo.data).toMatchObject({
          target_iqn: iqn,
          target_lun: 0,
          auth_method: 'CHAP',
          volume_id: vol.id,
        });
        expect(vol.connections).toContain(conn);
        const tpg = `/sys/kernel/config/target/iscsi/${iqn}/tpgt_1`;
        expect(await testPath(run, '-d', tpg)).toBe(true);
        expect(await testPath(run, '-d', `${tpg}/acls/${initiator}`)).toBe(true);
        expect((await ls(run, `${tpg}/lun`)).length).toBe(1);
        // the LUN's block backstore (core/iblock_<n>/<name>) is the LV's device
        const backstores = (): Promise<string> =>
          mustRun(run, ['find', '/sys/kernel/config/target/core', '-mindepth', '2', '-maxdepth', '2', '-name', lvName(vol)]);
        const [backstore] = (await backstores()).split('\n').filter(Boolean);
        expect(backstore, `a backstore named ${lvName(vol)}`).toBeDefined();
        expect((await mustRun(run, ['cat', `${backstore}/udev_path`])).trim()).toBe(`/dev/${layout.vg}/${lvName(vol)}`);
        expect((await mustRun(run, ['cat', `${tpg}/acls/${initiator}/auth/userid`])).trim()).toBe(conn.connectionInfo.data.auth_username);
        await conn.disconnect();
        expect(vol.connections).not.toContain(conn);
        expect(await testPath(run, '-e', `/sys/kernel/config/target/iscsi/${iqn}`)).toBe(false);
        expect((await backstores()).trim()).toBe('');
      });
    }
  });
}

/** shared/seed-snapshots.txt's two snippets, as written there, on the probe's backend. */
export function seedSuite(probe: StorageProbe): void {
  describe(`seed: snapshots, on ${probe.backend} (${probe.where})`, () => {
    const { ctx, track } = useBackend(probe);

    it('create: the returned snapshot is the one tracked in vol.snapshots, and it points at the very volume', async () => {
      const vol = track(await ctx.backend.createVolume({ size: 1 }));
      const snap = await vol.createSnapshot();
      expect(snap).toBe([...vol.snapshots][0]);
      expect(snap.volume).toBe(vol);
    });

    it('delete: removes the snapshot from the volume snapshots set', async () => {
      const vol = track(await ctx.backend.createVolume({ size: 1 }));
      const snap = await vol.createSnapshot();
      expect(vol.snapshots.size).toBe(1);
      await snap.delete();
      expect(vol.snapshots.size).toBe(0);
      expect(snap.status).toBe('deleted');
    });
  });
}
