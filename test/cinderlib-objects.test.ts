import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Agent,
  BackendError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  UnsupportedError,
  type Backend,
  type Volume,
} from '@kindling/sdk';
import { requires } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import {
  GiB,
  immutableUnavailable,
  readsPattern,
  virtualSize,
  whileAttached,
  whileImmutable,
  writePattern,
} from './support/cinderlib.js';

// The behaviours cinderlib's unit tests pin on its Volume, Snapshot and Connection objects
// (cinderlib/tests/unit/objects/test_{volume,snapshot,connection}.py), over a real agent process.
// Where cinderlib mocks a driver failure, these make storage fail for real: `chattr +i` makes a file
// or the share folder immutable, which stops even root from writing, creating or removing there.

const itFails = requires('this failure scenario (an immutable file, chattr +i)', immutableUnavailable(), it, it.skip);

let proc: AgentProcess;
let agent: Agent;
let nfs: Backend;
let share: string;

const fileOf = (vol: Volume): string => join(share, `volume-${vol.id}`);

beforeAll(async () => {
  proc = await startAgentProcess();
  share = join(proc.dir, 'share');
  agent = await Agent.connect(proc.url);
  nfs = await agent.backend('nfs');
});
afterAll(async () => {
  await agent?.close();
  await proc?.dispose();
});

describe('Volume', () => {
  it('create: name, description, size and metadata kept; available; the same in a fresh connection', async () => {
    const vol = await nfs.createVolume({ size: 2, name: 'vol_name', description: 'des', metadata: { k: 'v' } });
    expect(vol).toMatchObject({ name: 'vol_name', description: 'des', size: 2, metadata: { k: 'v' }, status: 'available' });
    expect(vol.sourceVolId).toBeNull();
    expect(vol.snapshotId).toBeNull();
    expect(vol.error).toBeNull();
    expect(vol.backend).toBe(nfs);
    const other = await Agent.connect(proc.url);
    try {
      const [seen] = await (await other.backend('nfs')).volumesFiltered({ volumeId: vol.id });
      expect(seen!.toDict()).toEqual(vol.toDict());
    } finally {
      await other.close();
    }
    await vol.delete();
  });

  itFails('create error: rejects with the failed call, and keeps an error record with what was asked', async () => {
    const before = new Set((await nfs.volumes()).map((v) => v.id));
    const err = await whileImmutable(share, () =>
      nfs.createVolume({ size: 3, name: 'vol_name', description: 'des' }).catch((e: unknown) => e),
    );
    expect(err).toBeInstanceOf(BackendError);
    // The agent makes the volume's file itself (issue 18): on an immutable share that open is what fails.
    expect((err as BackendError).details).toMatchObject({ syscall: 'open', errno: 'EPERM' });
    const failed = (await nfs.volumes()).filter((v) => !before.has(v.id));
    expect(failed).toHaveLength(1);
    expect(failed[0]!.status).toBe('error');
    const [vol] = failed;
    expect(vol).toMatchObject({ size: 3, name: 'vol_name', description: 'des' });
    expect(vol!.error).toMatchObject({ code: 'BACKEND_ERROR' });
    expect(existsSync(fileOf(vol!))).toBe(false);
    // An error volume can be deleted (and nothing is left).
    await vol!.delete();
    expect(vol!.status).toBe('deleted');
    expect(await nfs.volumesFiltered({ volumeId: vol!.id })).toEqual([]);
  });

  // cinderlib's create error carries the volume it left in error (exception.resource); ours names it.
  it('create error: the rejection names the volume left in error', async () => {
    const err = (await whileImmutable(share, () => nfs.createVolume({ size: 1 }).catch((e: unknown) => e))) as BackendError;
    expect(err).toBeInstanceOf(BackendError);
    const volumeId = err.details.volumeId;
    expect(volumeId).toEqual(expect.any(String));
    const [vol, ...others] = await nfs.volumesFiltered({ volumeId: volumeId as string });
    expect(others).toEqual([]);
    expect(vol).toMatchObject({ id: volumeId, status: 'error' });
    await vol!.delete();
  });

  it('delete: deleted, file removed, no longer listed', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    expect(existsSync(fileOf(vol))).toBe(true);
    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect(existsSync(fileOf(vol))).toBe(false);
    expect(await nfs.volumes()).not.toContain(vol);
  });

  it('delete with snapshots: refused (Conflict), the volume and its data untouched', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const err = await vol.delete().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).details).toMatchObject({ snapshots: [snap.id] });
    expect(vol.status).toBe('available');
    await vol.refresh();
    expect(vol.status).toBe('available');
    expect([...vol.snapshots]).toEqual([snap]);
    await snap.delete();
    await vol.delete();
  });

  it('delete while attached: refused (Conflict), still in-use', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    await vol.attach();
    await expect(vol.delete()).rejects.toBeInstanceOf(ConflictError);
    await vol.refresh();
    expect(vol.status).toBe('in-use');
    await vol.detach();
    await vol.delete();
  });

  itFails('delete error: error_deleting with the error kept, still listed; a retry deletes it', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const err = await whileImmutable(fileOf(vol), () => vol.delete().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(BackendError);
    // The object in hand already shows it (pushed before the reply), and so does the index.
    expect(vol.status).toBe('error_deleting');
    expect(vol.error).toMatchObject({ code: 'BACKEND_ERROR' });
    const [listed] = await nfs.volumesFiltered({ volumeId: vol.id });
    expect(listed).toBe(vol);
    expect(vol.status).toBe('error_deleting');
    expect(existsSync(fileOf(vol))).toBe(true);
    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect(existsSync(fileOf(vol))).toBe(false);
  });

  it('extend: the new size, on the file too, still available', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    await vol.extend(3);
    expect(vol.size).toBe(3);
    expect(vol.status).toBe('available');
    expect(await virtualSize(fileOf(vol), 'qcow2')).toBe(3 * GiB);
    await vol.delete();
  });

  it('extend to a size that is not larger: refused (InvalidArgument), nothing changes', async () => {
    const vol = await nfs.createVolume({ size: 2 });
    for (const size of [2, 1]) {
      await expect(vol.extend(size)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await vol.refresh();
    expect(vol).toMatchObject({ size: 2, status: 'available', error: null });
    expect(await virtualSize(fileOf(vol), 'qcow2')).toBe(2 * GiB);
    await vol.delete();
  });

  // Unlike cinder, a failed extend is settled against storage (issue 18): the volume stays usable.
  itFails('extend error: rejected with the failed command; storage holds the volume whole, so it stays available at its old size', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const err = await whileImmutable(fileOf(vol), () => vol.extend(2).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(BackendError);
    expect(vol).toMatchObject({ size: 1, status: 'available', error: null });
    await vol.refresh();
    expect(vol).toMatchObject({ size: 1, status: 'available', error: null });
    expect(await virtualSize(fileOf(vol), 'qcow2')).toBe(1 * GiB);
    await vol.delete();
  });

  // A capacity refusal happens before storage is touched: asking for too much must not cost the volume.
  it('extend beyond the room left: refused (Conflict), the volume still available and usable', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const err = await vol.extend(100_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(vol).toMatchObject({ size: 1, status: 'available', error: null });
    await vol.refresh();
    expect(vol).toMatchObject({ size: 1, status: 'available', error: null });
    await vol.extend(2);
    await vol.delete();
  });

  it('clone: a new volume of the requested size, sourceVolId recorded, available', async () => {
    const vol = await nfs.createVolume({ size: 2, name: 'src' });
    const clone = await vol.clone({ size: 3, name: 'copy' });
    expect(clone).not.toBe(vol);
    expect(clone).toMatchObject({ size: 3, name: 'copy', status: 'available', sourceVolId: vol.id, snapshotId: null });
    expect(await virtualSize(fileOf(clone), 'qcow2')).toBe(3 * GiB);
    const [listed] = await nfs.volumesFiltered({ volumeId: clone.id });
    expect(listed!.sourceVolId).toBe(vol.id);
    // Smaller than the source: refused, and no record is left behind.
    const count = (await nfs.volumes()).length;
    await expect(vol.clone({ size: 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await nfs.volumes()).length).toBe(count);
    await clone.delete();
    await vol.delete();
  });

  itFails('clone error: the new volume is kept in error with its source and size; the source is untouched', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    await whileAttached(vol, (conn) => writePattern(conn, 0xab));
    const before = new Set((await nfs.volumes()).map((v) => v.id));
    const err = await whileImmutable(share, () => vol.clone({ size: 2 }).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(BackendError);
    const failed = (await nfs.volumes()).filter((v) => !before.has(v.id));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ status: 'error', size: 2, sourceVolId: vol.id });
    await vol.refresh();
    expect(vol.status).toBe('available');
    expect(vol.snapshots.size).toBe(0);
    await whileAttached(vol, async (conn) => expect(await readsPattern(conn, 0xab)).toBe(true));
    await failed[0]!.delete();
    await vol.delete();
  });

  it('attach error: nothing to attach (the file is gone), so no connection and the volume stays available', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    await rm(fileOf(vol));
    const err = await vol.attach().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(vol.connections).toEqual([]);
    await vol.refresh();
    expect(vol.status).toBe('available');
    expect(vol.connections).toEqual([]);
    await vol.delete();
  });

  it('detach when not attached here: refused (Conflict), as cinderlib’s NotLocal', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    await expect(vol.detach()).rejects.toBeInstanceOf(ConflictError);
    const remote = await vol.connect({ host: 'compute-1', initiator: 'iqn.1993-08.org.debian:01:abc' });
    await expect(vol.detach()).rejects.toBeInstanceOf(ConflictError);
    expect(vol.connections).toEqual([remote]);
    await vol.disconnect(remote);
    await vol.delete();
  });

  it('connect for another host: cinder’s NFS connection info, in-use until the last disconnect', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const connector = { host: 'compute-1', ip: '192.0.2.10' };
    const c1 = await vol.connect(connector);
    const c2 = await vol.connect({ host: 'compute-2' });
    expect(c1.attached).toBe(false);
    expect(c1.path).toBeNull();
    expect(c1.connectorInfo).toEqual(connector);
    expect(c1.connectionInfo).toMatchObject({
      driverVolumeType: 'nfs',
      data: { export: share, name: `volume-${vol.id}`, format: 'qcow2' },
    });
    expect(vol.connections).toEqual([c1, c2]);
    expect(vol.status).toBe('in-use');
    await vol.disconnect(c1);
    expect(vol.status).toBe('in-use');
    expect(vol.connections).toEqual([c2]);
    await c2.disconnect();
    expect(vol.status).toBe('available');
    expect(vol.connections).toEqual([]);
    // A connection of another volume is not this volume's to disconnect.
    const other = await nfs.createVolume({ size: 1 });
    const c3 = await other.connect({ host: 'compute-3' });
    await expect(vol.disconnect(c3)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(other.connections).toEqual([c3]);
    await c3.disconnect();
    await other.delete();
    await vol.delete();
  });

  it('idempotent delete: a volume whose file was already removed by hand deletes cleanly', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    await rm(fileOf(vol));
    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect(await nfs.volumesFiltered({ volumeId: vol.id })).toEqual([]);
  });

  it('idempotent delete: a volume and its snapshot whose files were all removed by hand', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const files = (await readdir(share)).filter((n) => n.startsWith(`volume-${vol.id}`));
    expect(files.length).toBeGreaterThanOrEqual(3); // base, overlay, .info
    for (const name of files) await rm(join(share, name));
    expect(existsSync(fileOf(vol))).toBe(false);
    await snap.delete();
    expect(snap.status).toBe('deleted');
    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect(await nfs.volumesFiltered({ volumeId: vol.id })).toEqual([]);
  });
});

describe('Snapshot', () => {
  it('create: name, description, volumeId and volumeSize from the volume; the volume keeps it', async () => {
    const vol = await nfs.createVolume({ size: 2 });
    const snap = await vol.createSnapshot({ name: 'my_snap', description: 'my_desc' });
    expect(snap).toMatchObject({ name: 'my_snap', description: 'my_desc', volumeId: vol.id, volumeSize: 2, status: 'available' });
    expect(snap.volume).toBe(vol);
    expect([...vol.snapshots]).toEqual([snap]);
    expect(snap.error).toBeNull();
    await snap.delete();
    await vol.delete();
  });

  itFails('create error: rejects, and the snapshot is still listed in vol.snapshots with status error', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const err = await whileImmutable(share, () => vol.createSnapshot({ name: 'doomed' }).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(BackendError);
    // Without a refresh: the agent pushed the failed record before it replied.
    const [failed, ...more] = [...vol.snapshots];
    expect(more).toEqual([]);
    expect(failed).toMatchObject({ name: 'doomed', status: 'error', volumeId: vol.id });
    expect(failed!.error).toMatchObject({ code: 'BACKEND_ERROR' });
    await vol.refresh();
    expect([...vol.snapshots]).toEqual([failed]);
    expect(failed!.status).toBe('error');
    expect(vol.status).toBe('available');
    // The failed snapshot blocks the volume's delete until it is deleted itself.
    await expect(vol.delete()).rejects.toBeInstanceOf(ConflictError);
    await failed!.delete();
    expect(vol.snapshots.size).toBe(0);
    const ok = await vol.createSnapshot();
    expect(ok.status).toBe('available');
    await ok.delete();
    await vol.delete();
  });

  it('delete: deleted, removed from vol.snapshots, no longer listed', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    await snap.delete();
    expect(snap.status).toBe('deleted');
    expect(vol.snapshots.size).toBe(0);
    await expect(snap.refresh()).rejects.toBeInstanceOf(NotFoundError);
    await vol.delete();
  });

  itFails('delete error: error_deleting, still in vol.snapshots; a retry deletes it and the data survives', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    await whileAttached(vol, (conn) => writePattern(conn, 0xab));
    const snap = await vol.createSnapshot();
    await whileAttached(vol, (conn) => writePattern(conn, 0xcd));
    // Deleting the newest snapshot merges its overlay into the base file: an immutable base refuses.
    const err = await whileImmutable(fileOf(vol), () => snap.delete().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(BackendError);
    expect(snap.status).toBe('error_deleting');
    expect(snap.error).toMatchObject({ code: 'BACKEND_ERROR' });
    expect([...vol.snapshots]).toEqual([snap]);
    await vol.refresh();
    expect([...vol.snapshots]).toEqual([snap]);
    expect(snap.status).toBe('error_deleting');
    await snap.delete();
    expect(snap.status).toBe('deleted');
    expect(vol.snapshots.size).toBe(0);
    await whileAttached(vol, async (conn) => expect(await readsPattern(conn, 0xcd)).toBe(true));
    await vol.delete();
  });

  it('create volume: name and description as asked, snapshotId recorded, the size of the snapshot', async () => {
    const vol = await nfs.createVolume({ size: 2 });
    const snap = await vol.createSnapshot();
    const vol2 = await snap.createVolume({ name: 'new_name', description: 'new_desc' });
    expect(vol2).toMatchObject({ name: 'new_name', description: 'new_desc', size: 2, status: 'available', snapshotId: snap.id, sourceVolId: null });
    expect(vol2.id).not.toBe(vol.id);
    const [listed] = await nfs.volumesFiltered({ volumeId: vol2.id });
    expect(listed!.snapshotId).toBe(snap.id);
    // Smaller than the snapshot: refused, and no record is left behind.
    const count = (await nfs.volumes()).length;
    await expect(snap.createVolume({ size: 1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await nfs.volumes()).length).toBe(count);
    await vol2.delete();
    await snap.delete();
    await vol.delete();
  });

  itFails('create volume error: the new volume is kept in error with its snapshotId', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const before = new Set((await nfs.volumes()).map((v) => v.id));
    const err = await whileImmutable(share, () => snap.createVolume().catch((e: unknown) => e));
    expect(err).toBeInstanceOf(BackendError);
    const failed = (await nfs.volumes()).filter((v) => !before.has(v.id));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ status: 'error', snapshotId: snap.id, size: 1 });
    expect(snap.status).toBe('available');
    await failed[0]!.delete();
    await snap.delete();
    await vol.delete();
  });

  // An NFS snapshot makes a new overlay the active file while a connected host keeps writing to the
  // old one, which would become the snapshot's frozen base: cinder needs Nova for that, so we refuse.
  it('snapshot of an attached volume is refused (detach first), and nothing changes', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const conn = await vol.attach();
    await writePattern(conn, 0xab);
    const err = await vol.createSnapshot().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).details).toMatchObject({ feature: 'snapshotInUse' });
    expect(vol.snapshots.size).toBe(0);
    expect(vol.status).toBe('in-use');
    expect(await readsPattern(conn, 0xab)).toBe(true);
    await vol.detach();
    const snap = await vol.createSnapshot();
    expect(snap.status).toBe('available');
    await snap.delete();
    await vol.delete();
  });

  // Deleting the newest snapshot merges the active overlay away: the file conn.path names would go.
  it('snapshot delete on an attached volume is refused, and the attachment keeps its file', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const conn = await vol.attach();
    await expect(snap.delete()).rejects.toBeInstanceOf(ConflictError);
    expect(snap.status).toBe('available');
    expect(existsSync(conn.path!)).toBe(true);
    await vol.detach();
    await snap.delete();
    await vol.delete();
  });
});

describe('Capabilities', () => {
  it('NFS with snapshots: every operation, snapshots only while detached', async () => {
    expect(await nfs.capabilities()).toMatchObject({
      snapshot: true,
      snapshotInUse: false,
      clone: true,
      createFromSnapshot: true,
      revertToSnapshot: true,
      extend: true,
      attach: true,
      connect: true,
      thin: true,
      protocols: ['nfs'],
    });
  });

  describe('NFS with snapshotSupport false', () => {
    let proc2: AgentProcess;
    let agent2: Agent;
    let plain: Backend;
    beforeAll(async () => {
      proc2 = await startAgentProcess({
        backends: (dir) => [
          { name: 'plain', driver: 'nfs', shares: [join(dir, 'share')], format: 'raw', snapshotSupport: false },
        ],
      });
      agent2 = await Agent.connect(proc2.url);
      plain = await agent2.backend('plain');
    });
    afterAll(async () => {
      await agent2?.close();
      await proc2?.dispose();
    });

    it('says so, and a snapshot is refused with UnsupportedError naming the feature, leaving no record', async () => {
      const caps = await plain.capabilities();
      expect(caps).toMatchObject({ snapshot: false, createFromSnapshot: false, revertToSnapshot: false, extendWithSnapshots: false, clone: true, extend: true });
      const vol = await plain.createVolume({ size: 1 });
      const err = await vol.createSnapshot().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsupportedError);
      expect((err as UnsupportedError).details).toMatchObject({ feature: 'snapshot' });
      expect(vol.snapshots.size).toBe(0);
      await vol.refresh();
      expect(vol.snapshots.size).toBe(0);
      expect(vol.status).toBe('available');
      expect((await plain.stats({ refresh: true })).totalSnapshots).toBe(0);
      await vol.delete();
    });

    it('clone still works without snapshots, with the same data', async () => {
      const vol = await plain.createVolume({ size: 1 });
      await whileAttached(vol, (conn) => writePattern(conn, 0xab));
      const clone = await vol.clone();
      expect(clone.sourceVolId).toBe(vol.id);
      await whileAttached(clone, async (conn) => {
        expect(conn.connectionInfo.data.format).toBe('raw');
        expect(await readsPattern(conn, 0xab)).toBe(true);
      });
      expect(await virtualSize(join(proc2.dir, 'share', `volume-${clone.id}`), 'raw')).toBe(GiB);
      await clone.delete();
      await vol.delete();
    });
  });
});
