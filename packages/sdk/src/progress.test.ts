import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Progress } from '@kindling/protocol';
import { Agent } from './agent.js';
import type { Backend } from './backend.js';
import { StandInAgent } from './testing/stand-in-agent.js';

let server: StandInAgent;
let agent: Agent;
let lvm: Backend;
beforeEach(async () => {
  server = await StandInAgent.start();
  agent = await Agent.connect(server.url);
  lvm = await agent.backend('lvm');
});
afterEach(async () => {
  await agent.close();
  await server.stop();
});

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}
/** Pushes a progress frame: `doneBytes` of 4. */
function pushProgress(fields: Pick<Progress, 'id' | 'op' | 'doneBytes'> & { kind?: Progress['kind']; requestId?: string | undefined }): void {
  const { requestId, ...rest } = fields;
  server.push({ event: 'progress', resource: { kind: 'volume', totalBytes: 4, ...rest, ...(requestId === undefined ? {} : { requestId }) } });
}
const heard = (target: { on(event: 'progress', fn: (p: Progress) => void): unknown }): number[] => {
  const done: number[] = [];
  target.on('progress', (p) => done.push(p.doneBytes));
  return done;
};
/** A round trip: pushes sent before it have been applied once it returns. */
const sync = (): Promise<unknown> => agent.kv.get('sync');

describe('progress', () => {
  it('of a clone reaches the source, the call, and the new volume, adopted from pushes before the reply', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const step = gate();
    server.handle('volume.clone', async (a, { requestId }) => {
      const id = randomUUID();
      pushProgress({ id, op: 'volume.clone', doneBytes: 1, requestId });
      server.newVolume({ id, backend: 'lvm', size: 1, sourceVolId: String(a.id), status: 'creating' });
      await step.promise;
      pushProgress({ id, op: 'volume.clone', doneBytes: 4, requestId });
      return server.newVolume({ id, backend: 'lvm', size: 1, sourceVolId: String(a.id) });
    });
    const onSource = heard(vol);
    const perCall: number[] = [];
    const cloning = vol.clone({ onProgress: (p) => perCall.push(p.doneBytes) });

    // Its pushes are not dropped: the session holds the new volume before the reply names it.
    await expect.poll(() => agent.dump().length).toBe(2);
    const early = agent.load(agent.dump().find((d) => d.id !== vol.id)!);
    expect(early.status).toBe('creating');
    const onNew = heard(early);
    step.open();
    const copy = await cloning;
    expect(copy).toBe(early);
    expect(copy.status).toBe('available');
    expect(onSource).toEqual([1, 4]);
    expect(perCall).toEqual([1, 4]);
    expect(onNew).toEqual([4]);
  });

  it('of a volume made from a snapshot reaches the snapshot and the call', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    server.handle('snapshot.createVolume', (a, { requestId }) => {
      const id = randomUUID();
      pushProgress({ id, op: 'snapshot.createVolume', doneBytes: 2, requestId });
      return server.newVolume({ id, backend: 'lvm', size: 1, snapshotId: String(a.id) });
    });
    const onSnap = heard(snap);
    const onVol = heard(vol);
    const perCall: number[] = [];
    const made = await snap.createVolume({ onProgress: (p) => perCall.push(p.doneBytes) });
    expect(made.snapshotId).toBe(snap.id);
    expect(onSnap).toEqual([2]);
    expect(perCall).toEqual([2]);
    expect(onVol).toEqual([]);
  });

  it('of a revert or a zeroing delete is heard once on the volume itself', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    server.handle('volume.revert', (a, { requestId }) => {
      pushProgress({ id: vol.id, op: 'volume.revert', doneBytes: 3, requestId });
      return server.volumes.get(String(a.id));
    });
    const onVol = heard(vol);
    await vol.revertToSnapshot(snap);
    expect(onVol).toEqual([3]);

    await snap.delete();
    server.handle('volume.delete', (a, { requestId }) => {
      pushProgress({ id: vol.id, op: 'volume.clear', doneBytes: 4, requestId });
      const record = server.volumes.get(String(a.id))!;
      server.volumes.delete(record.id);
      return { ...record, status: 'deleted' };
    });
    const perCall: number[] = [];
    await vol.delete({ onProgress: (p) => perCall.push(p.doneBytes) });
    expect(onVol).toEqual([3, 4]);
    expect(perCall).toEqual([4]);
  });

  it("of another client's copy reaches a volume this session holds, and adopts nothing it does not", async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const onVol = heard(vol);
    pushProgress({ id: vol.id, op: 'volume.extend', doneBytes: 1, requestId: 'someone-else' });
    const stranger = randomUUID();
    pushProgress({ id: stranger, op: 'volume.clone', doneBytes: 1, requestId: 'someone-else' });
    server.newVolume({ id: stranger, backend: 'lvm', size: 1 });
    await sync();
    expect(onVol).toEqual([1]);
    expect(agent.dump().map((d) => d.id)).toEqual([vol.id]);
  });
});
