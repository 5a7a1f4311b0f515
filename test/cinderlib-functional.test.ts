import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type Backend, type Volume } from '@kindling/sdk';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { GiB, formatOf, readsPattern, virtualSize, volumeFilesIn, whileAttached, writePattern } from './support/cinderlib.js';

// cinderlib's functional suite (cinderlib/tests/functional/test_basic.py) over the SDK, against a real
// agent process, on every backend this machine runs for real: the NFS driver on a local-folder share,
// with qcow2 and with raw volume files. (The real-kernel lane runs the same on LVM and mounted NFS.)

const exec = promisify(execFile);
const A = 0xab;
const B = 0xcd;

describe.each([
  { format: 'qcow2' as const },
  { format: 'raw' as const },
])('cinderlib functional suite, NFS local folder, $format', ({ format }) => {
  let proc: AgentProcess;
  let agent: Agent;
  let backend: Backend;
  let share: string;
  const created: Volume[] = [];

  /** cinderlib's _create_vol: a volume that the tear-down removes. */
  async function createVol(size = 1): Promise<Volume> {
    const vol = await backend.createVolume({ size });
    created.push(vol);
    return vol;
  }

  beforeAll(async () => {
    proc = await startAgentProcess({
      backends: (dir) => [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format }],
    });
    share = join(proc.dir, 'share');
    agent = await Agent.connect(proc.url);
    backend = await agent.backend('nfs');
  });

  afterAll(async () => {
    // cinderlib's tearDown: detach, delete snapshots, delete volumes; the share must end up empty.
    try {
      for (const vol of created.reverse()) {
        if (vol.status === 'deleted') continue;
        await vol.refresh();
        for (const conn of [...vol.connections]) await conn.disconnect();
        for (const snap of [...vol.snapshots]) await snap.delete();
        await vol.delete();
      }
      expect(await volumeFilesIn(share)).toEqual([]);
    } finally {
      await agent?.close();
      await proc?.dispose();
    }
  });

  it('stats: the driver, vendor and capacity figures of the share', async () => {
    const stats = await backend.stats();
    expect(stats).toMatchObject({ backendName: 'nfs', driver: 'nfs', storageProtocol: 'nfs' });
    expect(stats.vendorName).toEqual(expect.any(String));
    const fs = await statfs(share);
    expect(stats.totalCapacityGb).toBeCloseTo((fs.blocks * fs.bsize) / GiB, 1);
    expect(stats.freeCapacityGb).toBeGreaterThan(0);
    expect(stats.freeCapacityGb).toBeLessThanOrEqual(stats.totalCapacityGb);
    expect(stats.thinProvisioningSupport).toBe(true); // qcow2 and sparse raw are both thin
  });

  it('stats with creation: the count and provisioned size change; cached stats follow the agent’s own changes', async () => {
    const initial = await backend.stats({ refresh: true });
    const size = 3;
    await createVol(size);
    // cinderlib asserts that the cached stats are the old ones. Here the agent keeps its cache current
    // for what it does itself, so the cached figures already show the new volume, as a refresh does.
    const cached = await backend.stats();
    const refreshed = await backend.stats({ refresh: true });
    for (const stats of [cached, refreshed]) {
      expect(stats.totalVolumes).toBe(initial.totalVolumes + 1);
      expect(stats.provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb + size, 2);
    }
  });

  it('stats cached vs refresh: storage changed behind the agent’s back shows only on refresh', async () => {
    const initial = await backend.stats({ refresh: true });
    // A volume file put on the share by hand (as another agent sharing the export would).
    const stray = join(share, `volume-${randomUUID()}`);
    await exec('qemu-img', ['create', '-q', '-f', format, stray, '4G']);
    try {
      expect((await backend.stats()).provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb, 2);
      expect((await backend.stats({ refresh: true })).provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb + 4, 2);
    } finally {
      await rm(stray);
    }
    expect((await backend.stats({ refresh: true })).provisionedCapacityGb).toBeCloseTo(initial.provisionedCapacityGb, 2);
  });

  it('create volume: available, with a file of its size on the share', async () => {
    const vol = await createVol(2);
    expect(vol.status).toBe('available');
    expect(vol.size).toBe(2);
    const file = join(share, `volume-${vol.id}`);
    expect(existsSync(file)).toBe(true);
    expect(await virtualSize(file, format)).toBe(2 * GiB);
    expect((await backend.volumes()).map((v) => v.id)).toContain(vol.id);
  });

  it('create and delete volume: deleted, gone from the listing and from the share', async () => {
    const vol = await createVol();
    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect(await backend.volumes()).not.toContain(vol);
    expect(await backend.volumesFiltered({ volumeId: vol.id })).toEqual([]);
    expect(existsSync(join(share, `volume-${vol.id}`))).toBe(false);
  });

  it('create snapshot: available, tracked in vol.snapshots, listed by the agent', async () => {
    const vol = await createVol();
    const snap = await vol.createSnapshot({ name: 'snap-1' });
    expect(snap.status).toBe('available');
    expect(snap.volumeSize).toBe(vol.size);
    expect(snap.volume).toBe(vol);
    expect([...vol.snapshots]).toEqual([snap]);
    const [listed] = await backend.volumesFiltered({ volumeId: vol.id });
    expect([...listed!.snapshots].map((s) => s.id)).toEqual([snap.id]);
  });

  it('create and delete snapshot: deleted, gone from vol.snapshots and the share, the volume intact', async () => {
    const vol = await createVol();
    const before = await volumeFilesIn(share);
    const snap = await vol.createSnapshot();
    await snap.delete();
    expect(snap.status).toBe('deleted');
    expect(vol.snapshots.has(snap)).toBe(false);
    await vol.refresh();
    expect(vol.snapshots.size).toBe(0);
    expect(vol.status).toBe('available');
    // Only the base file is left: the overlay was merged and removed.
    expect((await volumeFilesIn(share)).sort()).toEqual(before.sort());
    expect(await virtualSize(join(share, `volume-${vol.id}`), format)).toBe(vol.size * GiB);
  });

  it('attach: the connection is local, the path exists, the volume is in-use', async () => {
    const vol = await createVol();
    const conn = await vol.attach();
    expect(conn.attached).toBe(true);
    expect(vol.connections).toContain(conn);
    expect(conn.volume).toBe(vol);
    expect(vol.status).toBe('in-use');
    expect(conn.path).toEqual(expect.any(String));
    expect(existsSync(conn.path!)).toBe(true);
    expect(conn.connectionInfo.driverVolumeType).toBe('nfs');
    expect(formatOf(conn)).toBe(format);
    // The tear-down detaches it, as cinderlib's does.
  });

  it('attach and detach: the connection is gone and the volume available again', async () => {
    const vol = await createVol();
    const conn = await vol.attach();
    expect(vol.connections).toContain(conn);
    await vol.detach();
    expect(vol.connections).not.toContain(conn);
    expect(conn.attached).toBe(false);
    expect(vol.status).toBe('available');
    await vol.refresh();
    expect(vol.connections).toEqual([]);
    expect(vol.status).toBe('available');
  });

  it('attach and detach via the connection: conn.disconnect()', async () => {
    const vol = await createVol();
    const conn = await vol.attach();
    expect(conn.attached).toBe(true);
    expect(existsSync(conn.path!)).toBe(true);
    await conn.disconnect();
    expect(conn.attached).toBe(false);
    expect(vol.connections).not.toContain(conn);
    expect(vol.status).toBe('available');
    await vol.refresh();
    expect(vol.connections).toEqual([]);
  });

  it('disk I/O: what is written through the attached path reads back', async () => {
    const vol = await createVol();
    await whileAttached(vol, async (conn) => {
      expect(await readsPattern(conn, A)).toBe(false); // a new volume reads zeros
      await writePattern(conn, A);
      expect(await readsPattern(conn, A)).toBe(true);
    });
    // And after a detach and a new attach, the data is still there.
    await whileAttached(vol, async (conn) => {
      expect(await readsPattern(conn, A)).toBe(true);
    });
  });

  it('extend, through a separately loaded copy in another connection', async () => {
    const vol = await createVol(1);
    await whileAttached(vol, async (conn) => expect(await virtualSize(conn.path!, formatOf(conn))).toBe(1 * GiB));

    const agent2 = await Agent.connect(proc.url);
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
    await whileAttached(vol, async (conn) => expect(await virtualSize(conn.path!, formatOf(conn))).toBe(2 * GiB));
  });

  it('extend attached: the size grows, the volume stays in-use, conn.extend() returns the new size in bytes', async () => {
    const vol = await createVol(1);
    const conn = await vol.attach();
    await writePattern(conn, A);
    expect(await virtualSize(conn.path!, formatOf(conn))).toBe(1 * GiB);
    await vol.extend(2);
    expect(vol.size).toBe(2);
    expect(vol.status).toBe('in-use');
    expect(await conn.extend()).toBe(2 * GiB);
    expect(await virtualSize(conn.path!, formatOf(conn))).toBe(2 * GiB);
    expect(await readsPattern(conn, A)).toBe(true);
    await vol.detach();
    expect(vol.status).toBe('available');
    expect(vol.size).toBe(2);
  });

  it('clone: same size, same data, sourceVolId recorded, the source unchanged', async () => {
    const vol = await createVol(1);
    const originalSize = await whileAttached(vol, async (conn) => {
      await writePattern(conn, A);
      return virtualSize(conn.path!, formatOf(conn));
    });
    const clone = await vol.clone();
    created.push(clone);
    expect(clone.id).not.toBe(vol.id);
    expect(clone.size).toBe(vol.size);
    expect(clone.sourceVolId).toBe(vol.id);
    expect(clone.snapshotId).toBeNull();
    expect(clone.status).toBe('available');
    await whileAttached(clone, async (conn) => {
      expect(await virtualSize(conn.path!, formatOf(conn))).toBe(originalSize);
      expect(await readsPattern(conn, A)).toBe(true);
      await writePattern(conn, B); // the clone is its own copy
    });
    await whileAttached(vol, async (conn) => expect(await readsPattern(conn, A)).toBe(true));
    // The temporary snapshot a clone is copied from leaves no trace.
    await vol.refresh();
    expect(vol.snapshots.size).toBe(0);
  });

  it('create volume from snapshot: the data at snapshot time, snapshotId recorded', async () => {
    const vol = await createVol(1);
    const originalSize = await whileAttached(vol, async (conn) => {
      await writePattern(conn, A);
      return virtualSize(conn.path!, formatOf(conn));
    });
    const snap = await vol.createSnapshot();
    expect(snap.volumeSize).toBe(vol.size);
    await whileAttached(vol, async (conn) => writePattern(conn, B));

    const fromSnap = await snap.createVolume();
    created.push(fromSnap);
    expect(fromSnap.size).toBe(vol.size);
    expect(fromSnap.snapshotId).toBe(snap.id);
    expect(fromSnap.sourceVolId).toBeNull();
    await whileAttached(fromSnap, async (conn) => {
      expect(await virtualSize(conn.path!, formatOf(conn))).toBe(originalSize);
      expect(await readsPattern(conn, A)).toBe(true);
    });
    await whileAttached(vol, async (conn) => expect(await readsPattern(conn, B)).toBe(true));
  });

  it('create a larger volume from a snapshot: the data, then zeros up to the new size', async () => {
    const vol = await createVol(1);
    await whileAttached(vol, (conn) => writePattern(conn, A));
    const snap = await vol.createSnapshot();
    const bigger = await snap.createVolume({ size: 2 });
    created.push(bigger);
    expect(bigger.size).toBe(2);
    await whileAttached(bigger, async (conn) => {
      expect(await virtualSize(conn.path!, formatOf(conn))).toBe(2 * GiB);
      expect(await readsPattern(conn, A)).toBe(true);
      expect(await readsPattern(conn, 0, '1G', '1M')).toBe(true);
    });
  });

  it('revert to snapshot: the data goes back to the snapshot’s', async () => {
    const vol = await createVol(1);
    await whileAttached(vol, (conn) => writePattern(conn, A));
    const snap = await vol.createSnapshot();
    await whileAttached(vol, (conn) => writePattern(conn, B));
    await vol.revertToSnapshot(snap);
    expect(vol.status).toBe('available');
    await whileAttached(vol, async (conn) => {
      expect(await readsPattern(conn, A)).toBe(true);
      expect(await readsPattern(conn, B)).toBe(false);
    });
    // The snapshot is still there and still holds A.
    expect(snap.status).toBe('available');
    const again = await snap.createVolume();
    created.push(again);
    await whileAttached(again, async (conn) => expect(await readsPattern(conn, A)).toBe(true));
  });
});
