import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AttachmentResult, GroupSnapshotRecord, OpName, SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { inRequest } from '../request-context.js';
import type { Services } from '../services.js';
import { tempServices, type TempServices } from '../testing/temp-services.js';
import { RequestLedger, type CallContext } from './requests.js';

// A change cut by an agent crash after its work, before its outcome was written: the retry (to a new
// agent: a fresh ledger over the same index) answers what the first attempt did, not NOT_FOUND.
let t: TempServices;
let s: Services;
beforeEach(async () => {
  t = await tempServices('requests-crash');
  s = t.services;
});
afterEach(async () => {
  await t.dispose();
});

const ledger = () =>
  new RequestLedger(s.index, {
    volume: (id) => s.index.getVolume(id),
    snapshot: (id) => s.index.getSnapshot(id),
    connection: (id) => s.index.getConnection(id),
    group: (id) => s.index.getGroup(id),
  });

/** The request as the rpc session runs it: its context around the service call. */
const request =
  <T>(op: OpName, requestId: string, fn: () => Promise<T>) =>
  (call: CallContext): Promise<T> =>
    inRequest({ op, requestId, queued: false, ...call }, fn);

/** Runs `fn` for the request, then "crashes": the ledger never hears back, as when the agent is killed there. */
async function crashAfter(op: OpName, requestId: string, fn: () => Promise<unknown>): Promise<void> {
  let done!: () => void;
  const worked = new Promise<void>((resolve) => (done = resolve));
  void ledger().run(
    requestId,
    op,
    request(op, requestId, async () => {
      await fn();
      done();
      return new Promise(() => {});
    }),
  );
  await worked;
}

describe('exactly-once across a crash', () => {
  it('a volume delete: the retry answers the deleted volume', async () => {
    const vol = await s.volumes.create({ backend: 'nfs', size: 1 });
    await crashAfter('volume.delete', 'r-del', () => s.volumes.delete(vol.id));
    const retried = await ledger().run('r-del', 'volume.delete', request('volume.delete', 'r-del', () => s.volumes.delete(vol.id)));
    expect(retried).toMatchObject({ id: vol.id, status: 'deleted' });
  });

  it('a snapshot delete: the retry answers the deleted snapshot', async () => {
    const vol = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snap = await s.snapshots.create({ volumeId: vol.id });
    await crashAfter('snapshot.delete', 'r-snap', () => s.snapshots.delete(snap.id));
    const retried = (await ledger().run('r-snap', 'snapshot.delete', request('snapshot.delete', 'r-snap', () => s.snapshots.delete(snap.id)))) as SnapshotRecord;
    expect(retried).toMatchObject({ id: snap.id, status: 'deleted' });
  });

  it('a connect: the retry answers the connection it made, and makes no second one', async () => {
    const vol = await s.volumes.create({ backend: 'nfs', size: 1 });
    const connect = () => s.connections.connect(vol.id, { host: 'peer' });
    await crashAfter('volume.connect', 'r-connect', connect);
    const [made] = s.index.connectionsOf(vol.id);
    const retried = (await ledger().run('r-connect', 'volume.connect', request('volume.connect', 'r-connect', connect))) as AttachmentResult;
    expect(retried.connection.id).toBe(made?.id);
    expect(s.index.connectionsOf(vol.id).map((c) => c.id)).toEqual([made?.id]);
  });

  it('a disconnect: the retry answers the volume and the connection gone', async () => {
    const vol = await s.volumes.create({ backend: 'nfs', size: 1 });
    const { connection } = await s.connections.connect(vol.id, { host: 'peer' });
    await crashAfter('connection.delete', 'r-conn', () => s.connections.disconnect(connection.id));
    const retried = (await ledger().run('r-conn', 'connection.delete', request('connection.delete', 'r-conn', () => s.connections.disconnect(connection.id)))) as AttachmentResult;
    expect(retried.connection).toMatchObject({ id: connection.id, attached: false });
    expect(retried.volume).toMatchObject({ id: vol.id, status: 'available' } satisfies Partial<VolumeRecord>);
  });

  it('a group snapshot create: the retry answers the group it made, and cuts no second one', async () => {
    const volumes = [await s.volumes.create({ backend: 'nfs', size: 1 }), await s.volumes.create({ backend: 'nfs', size: 1 })];
    const create = (call: CallContext) => inRequest({ op: 'group.create', requestId: 'r-group', queued: false, ...call }, () => s.groups.create({ volumeIds: volumes.map((v) => v.id) }, call.newId));
    let done!: () => void;
    const worked = new Promise<void>((resolve) => (done = resolve));
    void ledger().run('r-group', 'group.create', async (call) => {
      await create(call);
      done();
      return new Promise(() => {});
    });
    await worked;
    const [made] = s.groups.list();
    const retried = (await ledger().run('r-group', 'group.create', create)) as GroupSnapshotRecord;
    expect(retried).toMatchObject({ id: made?.id, status: 'available' });
    expect(s.groups.list().map((g) => g.id)).toEqual([made?.id]);
    expect([...s.index.allSnapshots()]).toHaveLength(2);
  });

  it('a group snapshot delete: the retry answers the deleted group', async () => {
    const vol = await s.volumes.create({ backend: 'nfs', size: 1 });
    const group = await s.groups.create({ volumeIds: [vol.id] });
    await crashAfter('group.delete', 'r-group-del', () => s.groups.delete(group.id));
    const retried = await ledger().run('r-group-del', 'group.delete', request('group.delete', 'r-group-del', () => s.groups.delete(group.id)));
    expect(retried).toMatchObject({ id: group.id, status: 'deleted' });
  });
});
