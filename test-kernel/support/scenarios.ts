// The kernel lane's scenarios: cinderlib's functional suite (cinderlib/tests/functional/test_basic.py, as
// test/cinderlib-functional.test.ts runs it on the host's NFS local folders) and the seed's snapshot
// snippets, on one backend of the agent in the guest. Each backend gets its own test file, so the three run
// side by side (separate VGs and share; per-backend figures like totalVolumes stay this file's own).
//
// The SDK drives the agent from the host; every data and storage check runs inside the guest through the
// test-only guest-exec helper (qemu-io, blockdev, lvs, ls on the attached device or file).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ConflictError, type Backend, type Connection, type Volume } from '@kindling/sdk';
import {
  GiB,
  guestLs,
  guestLv,
  guestLvs,
  guestSize,
  guestTest,
  guestVg,
  isActive,
  layoutOf,
  readsPattern,
  volumeFiles,
  whileAttached,
  writePattern,
  type BackendLayout,
} from './data.js';
import { guestSh, guestSha256, guestWritePattern, kernelEnv } from './kernel.js';

const A = 0xab;
const B = 0xcd;
const C = 0x5e;
/** The last 4 MiB of a 1 GiB volume: a copy that stops short of the end misses it. */
const END = `${1024 - 4}M`;

export interface SuiteOptions {
  /** Also export a volume over iSCSI to another host's connector (LVM; ~2 s per targetcli call in TCG). */
  iscsi?: boolean;
}

/** Connects to the guest's agent and removes, after each test, what that test created. */
function useBackend(backendName: string) {
  const env = kernelEnv();
  const ctx = {
    agent: undefined as unknown as Agent,
    backend: undefined as unknown as Backend,
    layout: layoutOf(backendName),
    /** Every volume id made here, for the final check that storage holds none of them. */
    everCreated: [] as string[],
  };
  let created: Volume[] = [];

  beforeAll(async () => {
    ctx.agent = await Agent.connect(env.url, { token: env.token });
    ctx.backend = await ctx.agent.backend(backendName);
  });

  // cinderlib's tearDown: detach, delete snapshots, delete volumes (newest first: clones before sources).
  afterEach(async () => {
    const vols = created.reverse();
    created = [];
    for (const vol of vols) {
      if (vol.status === 'deleted') continue;
      for (const conn of [...vol.connections]) await conn.disconnect();
      for (const snap of [...vol.snapshots]) await snap.delete();
      await vol.delete();
    }
  });

  afterAll(async () => {
    try {
      if (ctx.everCreated.length > 0 && ctx.backend) expect(await leftOnStorage(ctx.layout, ctx.everCreated)).toEqual([]);
    } finally {
      await ctx.agent?.close();
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

/** LVs or share files that still carry one of `ids` (volumes, or snapshots/clones named after them). */
async function leftOnStorage(layout: BackendLayout, ids: string[]): Promise<string[]> {
  const names = layout.driver === 'lvm' ? (await guestLvs(layout.vg!)).map((l) => l.lv_name) : await guestLs(layout.mountPoint!);
  return names.filter((n) => ids.some((id) => n.includes(id)));
}

const lvName = (vol: { id: string }): string => `volume-${vol.id}`;
const snapLvName = (snap: { id: string }): string => `_snapshot-${snap.id}`;

/** The attached path the driver must hand back: the LV's device node, or the active file on the mount. */
function expectedPath(layout: BackendLayout, vol: Volume, activeFile = `volume-${vol.id}`): string {
  return layout.driver === 'lvm' ? `/dev/${layout.vg}/${lvName(vol)}` : `${layout.mountPoint}/${activeFile}`;
}

export function cinderlibSuite(backendName: string, options: SuiteOptions = {}): void {
  describe(`cinderlib functional suite on ${backendName} (real kernel)`, () => {
    const { ctx, createVol, track } = useBackend(backendName);
    const { layout } = ctx;
    const lvm = layout.driver === 'lvm';

    it('stats: driver, protocol and capacity figures match the guest’s storage', async () => {
      const stats = await ctx.backend.stats({ refresh: true });
      expect(stats).toMatchObject({
        backendName,
        driver: layout.driver,
        storageProtocol: lvm ? 'iSCSI' : 'nfs',
        thinProvisioningSupport: layout.thin,
        thickProvisioningSupport: !layout.thin,
      });
      expect(stats.vendorName).toEqual(expect.any(String));
      let total: number;
      let free: number;
      if (lvm && !layout.thin) {
        const vg = await guestVg(layout.vg!);
        [total, free] = [vg.vg_size / GiB, vg.vg_free / GiB];
      } else if (lvm) {
        const pool = await guestLv(layout.vg!, layout.pool!);
        const percent = Number((await guestSh(`lvs --noheadings -o data_percent ${layout.vg}/${layout.pool}`)).trim());
        total = Number(pool!.lv_size) / GiB;
        free = total * (1 - percent / 100);
      } else {
        const [blocks, bsize, avail] = (await guestSh(`stat -f -c '%b %S %a' ${layout.mountPoint}`)).trim().split(' ').map(Number);
        [total, free] = [(blocks! * bsize!) / GiB, (avail! * bsize!) / GiB];
      }
      expect(stats.totalCapacityGb).toBeGreaterThan(10); // the 16 GiB disks
      expect(Math.abs(stats.totalCapacityGb - total)).toBeLessThan(0.02);
      expect(Math.abs(stats.freeCapacityGb - free)).toBeLessThan(0.1);
      expect(stats.freeCapacityGb).toBeLessThanOrEqual(stats.totalCapacityGb);
    });

    it('stats with creation: the volume count and provisioned size grow; cached stats follow the agent’s own changes', async () => {
      const initial = await ctx.backend.stats({ refresh: true });
      await createVol(1);
      const cached = await ctx.backend.stats();
      const refreshed = await ctx.backend.stats({ refresh: true });
      for (const stats of [cached, refreshed]) {
        expect(stats.totalVolumes).toBe(initial.totalVolumes + 1);
        expect(stats.provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb + 1, 1);
      }
      if (!layout.thin) expect(refreshed.freeCapacityGb).toBeCloseTo(initial.freeCapacityGb - 1, 1);
    });

    it('create volume: available, and on storage with its size', async () => {
      const vol = await createVol(1);
      expect(vol.status).toBe('available');
      expect(vol.size).toBe(1);
      if (lvm) {
        const lv = await guestLv(layout.vg!, lvName(vol));
        expect(lv, `LV ${lvName(vol)} in ${layout.vg}`).toBeDefined();
        expect(Number(lv!.lv_size)).toBe(1 * GiB);
        expect(lv!.lv_tags).toContain(`kindling_id_${vol.id}`);
        expect(lv!.pool_lv).toBe(layout.thin ? layout.pool : '');
        expect(lv!.lv_attr[0]).toBe(layout.thin ? 'V' : '-');
      } else {
        expect(await volumeFiles(layout, vol)).toEqual([`volume-${vol.id}`]);
        const info = JSON.parse(await guestSh(`qemu-img info -U --output=json ${layout.mountPoint}/volume-${vol.id}`));
        expect(info).toMatchObject({ format: 'qcow2', 'virtual-size': 1 * GiB });
      }
      expect((await ctx.backend.volumes()).map((v) => v.id)).toContain(vol.id);
    });

    it('create and delete volume: deleted, gone from the listing and from storage', async () => {
      const vol = await createVol(1);
      await vol.delete();
      expect(vol.status).toBe('deleted');
      expect((await ctx.backend.volumes()).map((v) => v.id)).not.toContain(vol.id);
      expect(await ctx.backend.volumesFiltered({ volumeId: vol.id })).toEqual([]);
      if (lvm) expect(await guestLv(layout.vg!, lvName(vol))).toBeUndefined();
      else expect(await volumeFiles(layout, vol)).toEqual([]);
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
      if (lvm) {
        const lv = await guestLv(layout.vg!, snapLvName(snap));
        expect(lv, `snapshot LV ${snapLvName(snap)}`).toBeDefined();
        expect(lv!.origin).toBe(lvName(vol));
        // thick: a COW snapshot ('s') of its origin's size; thin: a thin volume in the pool
        expect(lv!.lv_attr[0]).toBe(layout.thin ? 'V' : 's');
        expect(lv!.pool_lv).toBe(layout.thin ? layout.pool : '');
        expect(lv!.lv_tags).toContain(`kindling_vol_${vol.id}`);
      } else {
        expect(await volumeFiles(layout, vol)).toEqual(
          [`volume-${vol.id}`, `volume-${vol.id}.${snap.id}`, `volume-${vol.id}.info`].sort(),
        );
      }
    });

    it('create and delete snapshot: deleted, gone from vol.snapshots and storage, the volume intact', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(conn, A));
      const snap = await vol.createSnapshot();
      await snap.delete();
      expect(snap.status).toBe('deleted');
      expect(vol.snapshots.has(snap)).toBe(false);
      await vol.refresh();
      expect(vol.snapshots.size).toBe(0);
      expect(vol.status).toBe('available');
      if (lvm) {
        expect(await guestLv(layout.vg!, snapLvName(snap))).toBeUndefined();
        expect(await guestLv(layout.vg!, lvName(vol))).toBeDefined();
      } else {
        // the overlay was committed into the base file and removed
        expect((await volumeFiles(layout, vol)).filter((n) => n.includes(snap.id))).toEqual([]);
      }
      await whileAttached(vol, async (conn) => {
        expect(conn.path).toBe(expectedPath(layout, vol));
        expect(await readsPattern(conn, A)).toBe(true);
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
      if (lvm) {
        expect(conn.connectionInfo.driverVolumeType).toBe('local');
        expect(await guestTest('-b', conn.path!)).toBe(true);
        expect(isActive((await guestLv(layout.vg!, lvName(vol)))!)).toBe(true);
      } else {
        expect(conn.connectionInfo.driverVolumeType).toBe('nfs');
        expect(conn.connectionInfo.data.format).toBe('qcow2');
        expect(await guestTest('-f', conn.path!)).toBe(true);
        // the file is on the agent's own NFS mount of 127.0.0.1:/export
        expect((await guestSh(`stat -f -c %T ${conn.path}`)).trim()).toBe('nfs');
      }
      expect(await guestSize(conn)).toBe(1 * GiB);
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
        expect(isActive((await guestLv(layout.vg!, lvName(vol)))!)).toBe(false);
        expect(await guestTest('-e', conn.path!)).toBe(false);
      }
    });

    it('attach and detach via the connection: conn.disconnect()', async () => {
      const vol = await createVol(1);
      const conn = await vol.attach();
      expect(conn.attached).toBe(true);
      expect(await guestTest('-e', conn.path!)).toBe(true);
      await conn.disconnect();
      expect(conn.attached).toBe(false);
      expect(vol.connections).not.toContain(conn);
      expect(vol.status).toBe('available');
      await vol.refresh();
      expect(vol.connections).toEqual([]);
      if (lvm) expect(isActive((await guestLv(layout.vg!, lvName(vol)))!)).toBe(false);
    });

    it('disk I/O: what is written through the attached path reads back, also after a new attach', async () => {
      const vol = await createVol(1);
      let sha = '';
      await whileAttached(vol, async (conn) => {
        // A new volume reads zeros: thin LVs and NFS images start empty, and a thick LV's extents were
        // zeroed when the volume or snapshot that held them was deleted (volumeClear 'zero', the default).
        expect(await readsPattern(conn, 0)).toBe(true);
        expect(await readsPattern(conn, A)).toBe(false);
        await writePattern(conn, A);
        await writePattern(conn, B, END);
        expect(await readsPattern(conn, A)).toBe(true);
        expect(await readsPattern(conn, B, END)).toBe(true);
        // a device also takes plain dd (direct I/O) from the guest's coreutils
        if (lvm) sha = await guestWritePattern(conn.path!, `kindling-${vol.id}`, 8 << 20, 64 << 20);
      });
      await whileAttached(vol, async (conn) => {
        expect(await readsPattern(conn, A)).toBe(true);
        expect(await readsPattern(conn, B, END)).toBe(true);
        if (lvm) expect(await guestSha256(conn.path!, 8 << 20, 64 << 20)).toBe(sha);
      });
    });

    it('extend: the size grows on storage, the data stays', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(conn, A));
      await vol.extend(2);
      expect(vol.size).toBe(2);
      expect(vol.status).toBe('available');
      await vol.refresh();
      expect(vol.size).toBe(2);
      if (lvm) expect(Number((await guestLv(layout.vg!, lvName(vol)))!.lv_size)).toBe(2 * GiB);
      await whileAttached(vol, async (conn) => {
        expect(await guestSize(conn)).toBe(2 * GiB);
        expect(await readsPattern(conn, A)).toBe(true);
        if (layout.thin) expect(await readsPattern(conn, 0, '1G', '4M')).toBe(true); // thick: old extents
      });
    });

    it('extend a volume that has a snapshot: grows (a thick origin is deactivated to grow), the snapshot kept', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(conn, A));
      const snap = await vol.createSnapshot();
      await vol.extend(2);
      expect(vol.size).toBe(2);
      expect(vol.status).toBe('available');
      expect(snap.status).toBe('available');
      if (lvm) {
        expect(Number((await guestLv(layout.vg!, lvName(vol)))!.lv_size)).toBe(2 * GiB);
        expect((await guestLv(layout.vg!, snapLvName(snap)))!.origin).toBe(lvName(vol));
      }
      await whileAttached(vol, async (conn) => {
        expect(await guestSize(conn)).toBe(2 * GiB);
        expect(await readsPattern(conn, A)).toBe(true);
        await writePattern(conn, B, '1G'); // the grown part is usable
        expect(await readsPattern(conn, B, '1G')).toBe(true);
      });
    });

    it('extend attached: the size grows, the volume stays in-use, conn.extend() returns the new size in bytes', async () => {
      const vol = await createVol(1);
      const conn = await vol.attach();
      await writePattern(conn, A);
      expect(await guestSize(conn)).toBe(1 * GiB);
      await vol.extend(2);
      expect(vol.size).toBe(2);
      expect(vol.status).toBe('in-use');
      expect(await conn.extend()).toBe(2 * GiB);
      expect(await guestSize(conn)).toBe(2 * GiB);
      expect(await readsPattern(conn, A)).toBe(true);
      await vol.detach();
      expect(vol.status).toBe('available');
      expect(vol.size).toBe(2);
    });

    it('snapshots of an attached volume: taken and deleted on LVM; refused on NFS (capability snapshotInUse)', async () => {
      const caps = await ctx.backend.capabilities();
      expect(caps.snapshotInUse).toBe(lvm);
      const vol = await createVol(1);
      const conn = await vol.attach();
      await writePattern(conn, A);
      if (caps.snapshotInUse) {
        const snap = await vol.createSnapshot();
        expect(snap.status).toBe('available');
        expect(vol.status).toBe('in-use');
        await writePattern(conn, B); // the attached device keeps taking writes
        const other = await vol.createSnapshot();
        await other.delete();
        expect(await guestLv(layout.vg!, snapLvName(other))).toBeUndefined();
        expect([...vol.snapshots]).toEqual([snap]);
        expect(await readsPattern(conn, B)).toBe(true);
        return;
      }
      const files = await volumeFiles(layout, vol);
      const err = await vol.createSnapshot().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as ConflictError).details).toMatchObject({ feature: 'snapshotInUse' });
      expect(vol.snapshots.size).toBe(0);
      expect(vol.status).toBe('in-use');
      expect(await volumeFiles(layout, vol)).toEqual(files);
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
      expect(await readsPattern(again, A)).toBe(true);
    });

    it('extend attached with a snapshot: refused on thick LVM (capability extendInUseWithSnapshots), else grows', async () => {
      const caps = await ctx.backend.capabilities();
      expect(caps.extendInUseWithSnapshots).toBe(layout.thin);
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(conn, A));
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
        const lv = await guestLv(layout.vg!, lvName(vol));
        expect(Number(lv!.lv_size)).toBe(1 * GiB);
        expect(isActive(lv!)).toBe(true);
        expect(await guestSize(conn)).toBe(1 * GiB);
        expect(await readsPattern(conn, A)).toBe(true);
        // detached, the same extend goes through (deactivate, grow, reactivate)
        await vol.detach();
        await vol.extend(2);
        expect(vol.size).toBe(2);
        expect(snap.status).toBe('available');
        return;
      }
      await vol.extend(2);
      expect(vol.size).toBe(2);
      expect(vol.status).toBe('in-use');
      expect(await conn.extend()).toBe(2 * GiB);
      expect(await guestSize(conn)).toBe(2 * GiB);
      expect(await readsPattern(conn, A)).toBe(true);
      expect(snap.status).toBe('available');
    });

    it('clone: same size, same data end to end, its own copy, no temporary snapshot left', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, async (conn) => {
        await writePattern(conn, A);
        await writePattern(conn, A, END);
      });
      const clone = track(await vol.clone());
      expect(clone.id).not.toBe(vol.id);
      expect(clone.size).toBe(1);
      expect(clone.sourceVolId).toBe(vol.id);
      expect(clone.snapshotId).toBeNull();
      expect(clone.status).toBe('available');
      await whileAttached(clone, async (conn) => {
        expect(conn.path).toBe(expectedPath(layout, clone));
        expect(await guestSize(conn)).toBe(1 * GiB);
        expect(await readsPattern(conn, A)).toBe(true);
        expect(await readsPattern(conn, A, END)).toBe(true);
        await writePattern(conn, B); // the clone is its own copy
      });
      await whileAttached(vol, async (conn) => expect(await readsPattern(conn, A)).toBe(true));
      await vol.refresh();
      expect(vol.snapshots.size).toBe(0);
      if (lvm) {
        const names = (await guestLvs(layout.vg!)).map((l) => l.lv_name);
        expect(names.filter((n) => n.startsWith('clone-snap-') || n.includes('snapshot'))).toEqual([]);
      } else {
        expect((await volumeFiles(layout, vol)).filter((n) => n.includes('tmp-snap'))).toEqual([]);
      }
    });

    it('create volume from snapshot: the data as it was at snapshot time, snapshotId recorded', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, async (conn) => {
        await writePattern(conn, A);
        await writePattern(conn, A, END);
      });
      const snap = await vol.createSnapshot();
      await whileAttached(vol, async (conn) => {
        await writePattern(conn, B);
        await writePattern(conn, B, END);
      });
      const fromSnap = track(await snap.createVolume());
      expect(fromSnap.size).toBe(1);
      expect(fromSnap.snapshotId).toBe(snap.id);
      expect(fromSnap.sourceVolId).toBeNull();
      expect(fromSnap.status).toBe('available');
      await whileAttached(fromSnap, async (conn) => {
        expect(await guestSize(conn)).toBe(1 * GiB);
        expect(await readsPattern(conn, A)).toBe(true);
        expect(await readsPattern(conn, A, END)).toBe(true);
      });
      await whileAttached(vol, async (conn) => {
        expect(await readsPattern(conn, B)).toBe(true);
        expect(await readsPattern(conn, B, END)).toBe(true);
      });
    });

    it('create a larger volume from a snapshot: the snapshot’s data, then room up to the new size', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, async (conn) => {
        await writePattern(conn, A);
        await writePattern(conn, A, END);
      });
      const snap = await vol.createSnapshot();
      const bigger = track(await snap.createVolume({ size: 2 }));
      expect(bigger.size).toBe(2);
      if (lvm) expect(Number((await guestLv(layout.vg!, lvName(bigger)))!.lv_size)).toBe(2 * GiB);
      await whileAttached(bigger, async (conn) => {
        expect(await guestSize(conn)).toBe(2 * GiB);
        expect(await readsPattern(conn, A)).toBe(true);
        expect(await readsPattern(conn, A, END)).toBe(true);
        if (layout.thin) expect(await readsPattern(conn, 0, '1G')).toBe(true); // thick: old extents
        await writePattern(conn, B, `${2048 - 4}M`);
        expect(await readsPattern(conn, B, `${2048 - 4}M`)).toBe(true);
      });
    });

    it('revert to snapshot: the data goes back to the snapshot’s, and again after new writes', async () => {
      const vol = await createVol(1);
      await whileAttached(vol, (conn) => writePattern(conn, A));
      const snap = await vol.createSnapshot();
      await whileAttached(vol, (conn) => writePattern(conn, B));
      await vol.revertToSnapshot(snap);
      expect(vol.status).toBe('available');
      expect(snap.status).toBe('available');
      await whileAttached(vol, async (conn) => {
        expect(await readsPattern(conn, A)).toBe(true);
        await writePattern(conn, C);
      });
      // the snapshot is still there and still holds A. Thick LVM: merged into the volume, then taken again
      // (a snapshot of the volume); thin LVM: the volume was rebuilt as a thin snapshot of the snapshot.
      if (lvm && !layout.thin) expect((await guestLv(layout.vg!, snapLvName(snap)))?.origin).toBe(lvName(vol));
      if (lvm && layout.thin) {
        expect(await guestLv(layout.vg!, snapLvName(snap))).toBeDefined();
        expect((await guestLv(layout.vg!, lvName(vol)))?.origin).toBe(snapLvName(snap));
      }
      await vol.revertToSnapshot(snap);
      await whileAttached(vol, async (conn) => {
        expect(await readsPattern(conn, A)).toBe(true);
        expect(await readsPattern(conn, C)).toBe(false);
      });
      await vol.refresh();
      expect([...vol.snapshots].map((s) => s.id)).toEqual([snap.id]);
    });

    if (options.iscsi) {
      it('connect to another host over iSCSI: a LIO target with the LV as its LUN and an ACL; removed on disconnect', async () => {
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
        expect(await guestTest('-d', tpg)).toBe(true);
        expect(await guestTest('-d', `${tpg}/acls/${initiator}`)).toBe(true);
        expect((await guestLs(`${tpg}/lun`)).length).toBe(1);
        // the LUN's block backstore is the LV's device
        const udevPath = await guestSh(`cat /sys/kernel/config/target/core/iblock_*/${lvName(vol)}/udev_path`);
        expect(udevPath.trim()).toBe(`/dev/${layout.vg}/${lvName(vol)}`);
        expect((await guestSh(`cat ${tpg}/acls/${initiator}/auth/userid`)).trim()).toBe(conn.connectionInfo.data.auth_username);
        await conn.disconnect();
        expect(vol.connections).not.toContain(conn);
        expect(await guestTest('-e', `/sys/kernel/config/target/iscsi/${iqn}`)).toBe(false);
        expect((await guestSh(`ls -d /sys/kernel/config/target/core/iblock_*/${lvName(vol)} 2>/dev/null || true`)).trim()).toBe('');
      });
    }
  });
}

/** shared/seed-snapshots.txt's two snippets, as written there, on this backend. */
export function seedSuite(backendName: string): void {
  describe(`seed: snapshots, on ${backendName} (real kernel)`, () => {
    const { ctx, track } = useBackend(backendName);

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
