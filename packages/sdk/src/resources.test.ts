import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendError, ConflictError, InvalidArgumentError, NotFoundError, type VolumeStatus } from '@kindling/protocol';
import { Agent } from './agent.js';
import type { Backend } from './backend.js';
import { StandInAgent } from './testing/stand-in-agent.js';

let server: StandInAgent;
let agent: Agent;
let lvm: Backend;
beforeEach(async () => {
  server = await StandInAgent.start({ backends: [{ name: 'lvm', driver: 'lvm' }, { name: 'nfs', driver: 'nfs' }] });
  agent = await Agent.connect(server.url);
  lvm = await agent.backend('lvm');
});
afterEach(async () => {
  await agent.close();
  await server.stop();
});
/** A round trip: pushes sent before it have been applied once it returns (one ordered socket). */
const sync = (a: Agent = agent): Promise<unknown> => a.kv.get('sync');

describe('backends', () => {
  it('come from hello, one object per name', async () => {
    expect(lvm).toMatchObject({ name: 'lvm', driver: 'lvm', configured: true });
    expect(await agent.backend('lvm')).toBe(lvm);
    expect((await agent.backends()).map((b) => b.name)).toEqual(['lvm', 'nfs']);
    await expect(agent.backend('ceph')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('relay stats, capabilities and connector checks', async () => {
    server.handle('backend.stats', (a) => ({ backendName: a.backend, refreshed: a.refresh }));
    server.handle('backend.capabilities', () => ({ snapshot: true }));
    server.handle('backend.validateConnector', (a) => {
      if (!(a.connector as { initiator?: string }).initiator) throw new InvalidArgumentError('connector needs an initiator');
      return { valid: true };
    });
    expect(await lvm.stats({ refresh: true })).toEqual({ backendName: 'lvm', refreshed: true });
    expect(await lvm.capabilities()).toEqual({ snapshot: true });
    await expect(lvm.validateConnector({ initiator: 'iqn.x' })).resolves.toBeUndefined();
    await expect(lvm.validateConnector({})).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('identity (cinderlib seed snippets)', () => {
  it('create: the returned snapshot is the one tracked, and its volume is the volume', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    expect(snap).toBe([...vol.snapshots][0]);
    expect(snap.volume).toBe(vol);
  });

  it('delete: the snapshot leaves vol.snapshots and shows deleted', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    expect(vol.snapshots.size).toBe(1);
    await snap.delete();
    expect(vol.snapshots.size).toBe(0);
    expect(snap.status).toBe('deleted');
  });

  it('listing, refresh and filters give back the same objects', async () => {
    const vol = await lvm.createVolume({ size: 1, name: 'data' });
    const snap = await vol.createSnapshot({ name: 's1' });
    const [listed] = await lvm.volumes();
    expect(listed).toBe(vol);
    expect([...vol.snapshots]).toEqual([snap]);
    await vol.refresh();
    await snap.refresh();
    expect([...vol.snapshots][0]).toBe(snap);
    expect(await lvm.volumesFiltered({ volumeName: 'data' })).toEqual([vol]);
    expect((await lvm.volumesFiltered({ volumeId: vol.id }))[0]).toBe(vol);
  });

  it('a listing loads relations made elsewhere; refresh reloads them only when they were loaded', async () => {
    const other = await Agent.connect(server.url);
    const theirs = await (await other.backend('lvm')).createVolume({ size: 2 });
    const theirSnap = await theirs.createSnapshot();
    await sync();
    expect(agent.dump()).toHaveLength(0); // pushes about volumes we do not hold are dropped

    const [vol] = await lvm.volumes();
    expect(vol?.id).toBe(theirs.id);
    expect([...vol!.snapshots].map((s) => s.id)).toEqual([theirSnap.id]);
    expect([...vol!.snapshots][0]!.volume).toBe(vol);

    // Changed behind every session's back (no push): only refresh can see it.
    const record = server.snapshots.get(theirSnap.id)!;
    server.snapshots.delete(theirSnap.id);
    const added = { ...record, id: crypto.randomUUID(), name: 'quiet' };
    server.snapshots.set(added.id, added);
    const kept = [...vol!.snapshots][0]!;
    await vol!.refresh();
    expect(kept.status).toBe('deleted');
    expect([...vol!.snapshots].map((s) => s.name)).toEqual(['quiet']);
    await other.close();
  });

  it('refresh of a volume that is gone marks it deleted and rejects NotFound', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    server.volumes.delete(vol.id);
    await expect(vol.refresh()).rejects.toBeInstanceOf(NotFoundError);
    expect(vol.status).toBe('deleted');
  });
});

describe('volume operations', () => {
  it('delete is refused while snapshots exist, then drops the object', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    await expect(vol.delete()).rejects.toBeInstanceOf(ConflictError);
    expect(vol.status).toBe('available');
    await snap.delete();
    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect(agent.dump()).toEqual([]);
    expect(await lvm.volumes()).toEqual([]);
  });

  it('extend, clone, create from snapshot and revert update or make objects', async () => {
    const vol = await lvm.createVolume({ size: 1, metadata: { app: 'db' } });
    await vol.extend(3);
    expect(vol.size).toBe(3);
    const copy = await vol.clone({ name: 'copy' });
    expect(copy).not.toBe(vol);
    expect(copy).toMatchObject({ sourceVolId: vol.id, name: 'copy', size: 3, backend: lvm });
    const snap = await vol.createSnapshot();
    const fromSnap = await snap.createVolume({ size: 4 });
    expect(fromSnap).toMatchObject({ snapshotId: snap.id, size: 4 });
    await vol.revertToSnapshot(snap);
    expect(server.requests.at(-1)).toMatchObject({ op: 'volume.revert', args: { id: vol.id, snapshotId: snap.id } });
  });

  it('a failed create leaves no object; a failed snapshot is tracked with status error', async () => {
    const vol = await (await agent.backend('nfs')).createVolume({ size: 1 });
    server.handle('volume.create', (a) => {
      server.newVolume({ backend: String(a.backend), size: 1, status: 'error' });
      throw new BackendError('lvcreate failed');
    });
    await expect(lvm.createVolume({ size: 1 })).rejects.toBeInstanceOf(BackendError);
    expect(agent.dump().map((d) => d.id)).toEqual([vol.id]);

    server.handle('snapshot.create', () => {
      server.newSnapshot(server.volumes.get(vol.id)!, { status: 'error', error: { code: 'BACKEND_ERROR', message: 'qemu-img failed' } });
      throw new BackendError('qemu-img failed');
    });
    await expect(vol.createSnapshot()).rejects.toBeInstanceOf(BackendError);
    const [failed] = [...vol.snapshots];
    expect(failed).toMatchObject({ status: 'error', error: { code: 'BACKEND_ERROR' } });
    expect(failed!.volume).toBe(vol);
  });

  it('pushed status changes update the object in place and fire on("status")', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const seen: [VolumeStatus, VolumeStatus][] = [];
    const listener = (status: VolumeStatus, previous: VolumeStatus): void => void seen.push([status, previous]);
    vol.on('status', listener);
    server.push({ event: 'volume', resource: { ...server.volumes.get(vol.id)!, status: 'extending' } });
    await sync();
    expect(vol.status).toBe('extending');
    await vol.extend(2); // the reply (and its push) bring it back
    expect(seen).toEqual([
      ['extending', 'available'],
      ['available', 'extending'],
    ]);
    vol.off('status', listener);
    server.push({ event: 'volume', resource: { ...server.volumes.get(vol.id)!, status: 'error' } });
    await sync();
    expect(vol.status).toBe('error');
    expect(seen).toHaveLength(2);
  });

  it('a snapshot pushed as deleted by another session leaves vol.snapshots', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const statuses: string[] = [];
    snap.on('status', (s) => statuses.push(s));
    const other = await Agent.connect(server.url);
    const [theirs] = await (await other.backend('lvm')).volumes();
    await [...theirs!.snapshots][0]!.delete();
    await sync();
    expect(vol.snapshots.size).toBe(0);
    expect(statuses).toEqual(['deleted']);
    await other.close();
  });
});

describe('connections', () => {
  it('attach gives a local path; it survives refresh (cinderlib #1868153); detach removes it', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const conn = await vol.attach();
    expect(conn).toMatchObject({ attached: true, path: `/dev/stand-in/${vol.id}` });
    expect(conn.volume).toBe(vol);
    expect(vol.connections).toEqual([conn]);
    expect(vol.status).toBe('in-use');
    await vol.refresh();
    expect(vol.connections[0]).toBe(conn);
    expect(conn.attached).toBe(true);
    await vol.detach();
    expect(vol.connections).toEqual([]);
    expect(conn.attached).toBe(false);
    expect(vol.status).toBe('available');
  });

  it('connect for another host, extend, and disconnect from either side', async () => {
    const vol = await lvm.createVolume({ size: 2 });
    const a = await vol.connect({ host: 'node-a', initiator: 'iqn.a' });
    const b = await vol.connect({ host: 'node-b', initiator: 'iqn.b' });
    expect(a.connectorInfo).toEqual({ host: 'node-a', initiator: 'iqn.a' });
    expect(vol.connections).toEqual([a, b]);
    expect(await a.extend()).toBe(2 * 2 ** 30);
    await vol.disconnect(a);
    expect(vol.connections).toEqual([b]);
    await b.disconnect();
    expect(vol.connections).toEqual([]);
    expect(vol.status).toBe('available');
  });
});

describe('kv', () => {
  it('gets, sets and deletes', async () => {
    expect(await agent.kv.get('node-1')).toBeNull();
    await agent.kv.set('node-1', '{"initiator":"iqn.x"}');
    expect(await agent.kv.get('node-1')).toBe('{"initiator":"iqn.x"}');
    expect(await agent.kv.delete('node-1')).toBe(true);
    expect(await agent.kv.delete('node-1')).toBe(false);
  });
});
