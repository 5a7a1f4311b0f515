import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplyFrame, VolumeListing, VolumeRecord } from '@kindling/protocol';
import { createCrashShim, type CrashShim } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

// A client that lost its reply retries with the same requestId and gets the first outcome: one volume.
let proc: AgentProcess;
let shim: CrashShim;
beforeAll(async () => {
  shim = await createCrashShim(['qemu-img']);
  proc = await startAgentProcess({ pathPrefix: [shim.dir] });
});
afterAll(async () => {
  await proc?.dispose();
  await shim?.dispose();
});

const resultOf = <T>(reply: ReplyFrame): T => {
  if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
  return reply.result as T;
};

async function named(name: string): Promise<VolumeRecord[]> {
  const client = await RawClient.connect(proc.url);
  const reply = await client.call('volume.list', { name });
  client.close();
  if (!reply.ok) throw new Error(reply.error.message);
  return (reply.result as VolumeListing).volumes;
}

describe('exactly-once mutations', () => {
  it('a create retried after its connection dropped mid-request makes one volume', async () => {
    const first = await RawClient.connect(proc.url);
    void first.sendFrame({ id: 1, op: 'volume.create', args: { backend: 'nfs', size: 1, name: 'once' }, requestId: 'req-once' });
    // The `creating` push says the agent has taken the request: the reply is what gets lost.
    while (!first.events.some((e) => e.event === 'volume' && e.resource.name === 'once')) await new Promise((r) => setTimeout(r, 1));
    first.ws.terminate();

    const second = await RawClient.connect(proc.url);
    const reply = await second.sendFrame({ id: 1, op: 'volume.create', args: { backend: 'nfs', size: 1, name: 'once' }, requestId: 'req-once' });
    second.close();
    expect(reply.ok).toBe(true);
    const volumes = await named('once');
    expect(volumes.map((v) => v.id)).toEqual([(reply as { result: VolumeRecord }).result.id]);
  });

  it('a retry after an agent restart gets the recorded outcome, failures included', async () => {
    const client = await RawClient.connect(proc.url);
    const made = await client.sendFrame({ id: 1, op: 'volume.create', args: { backend: 'nfs', size: 1, name: 'restart' }, requestId: 'req-restart' });
    const refused = await client.sendFrame({ id: 2, op: 'volume.extend', args: { id: '6f1c1f8e-2c1e-4a53-9d47-0a3f3d1b2c4d', size: 2 }, requestId: 'req-refused' });
    client.close();
    expect(refused).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });

    proc = await proc.restart();
    const after = await RawClient.connect(proc.url);
    const again = await after.sendFrame({ id: 1, op: 'volume.create', args: { backend: 'nfs', size: 1, name: 'restart' }, requestId: 'req-restart' });
    const refusedAgain = await after.sendFrame({ id: 2, op: 'volume.extend', args: { id: '6f1c1f8e-2c1e-4a53-9d47-0a3f3d1b2c4d', size: 2 }, requestId: 'req-refused' });
    after.close();
    expect((again as { result: VolumeRecord }).result.id).toBe((made as { result: VolumeRecord }).result.id);
    expect(refusedAgain).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect((await named('restart')).length).toBe(1);
  });

  it('two frames with one requestId sent together make one volume', async () => {
    const client = await RawClient.connect(proc.url);
    const frame = (id: number) => ({ id, op: 'volume.create', args: { backend: 'nfs', size: 1, name: 'together' }, requestId: 'req-together' });
    const [a, b] = await Promise.all([client.sendFrame(frame(1)), client.sendFrame(frame(2))]);
    client.close();
    expect(resultOf<VolumeRecord>(b).id).toBe(resultOf<VolumeRecord>(a).id);
    expect((await named('together')).map((v) => v.id)).toEqual([resultOf<VolumeRecord>(a).id]);
  });

  it('a delete whose reply was lost with its connection, retried with its requestId, succeeds', async () => {
    const client = await RawClient.connect(proc.url);
    const vol = resultOf<VolumeRecord>(await client.call('volume.create', { backend: 'nfs', size: 1, name: 'cut-delete' }));
    const frame = { id: 99, op: 'volume.delete', args: { id: vol.id }, requestId: 'req-cut-delete' };
    void client.sendFrame(frame);
    // The `deleted` push comes before the reply: the work is done, and the reply is what gets lost.
    while (!client.events.some((e) => e.event === 'volume' && e.resource.id === vol.id && e.resource.status === 'deleted')) {
      await new Promise((r) => setTimeout(r, 1));
    }
    client.ws.terminate();

    const again = await RawClient.connect(proc.url);
    const reply = await again.sendFrame(frame);
    again.close();
    expect(resultOf<VolumeRecord>(reply)).toMatchObject({ id: vol.id, status: 'deleted' });
    expect(await named('cut-delete')).toEqual([]);
  });

  it('an extend whose agent was killed after storage grew answers success when retried', async () => {
    let client = await RawClient.connect(proc.url);
    const vol = resultOf<VolumeRecord>(await client.call('volume.create', { backend: 'nfs', size: 1, name: 'crash-extend' }));
    const armed = await shim.arm({ command: 'qemu-img', args: ['resize'], at: 'after' });
    const frame = { id: 99, op: 'volume.extend', args: { id: vol.id, size: 2 }, requestId: 'req-crash-extend' };
    void client.sendFrame(frame);
    expect((await armed.reached()).exitCode).toBe(0);
    await proc.kill();
    await shim.release();
    client.close();

    proc = await proc.restart();
    client = await RawClient.connect(proc.url);
    const retried = await client.sendFrame(frame);
    client.close();
    expect(resultOf<VolumeRecord>(retried)).toMatchObject({ id: vol.id, size: 2, status: 'available' });
  });

  it('refuses a request id reused for another operation', async () => {
    const client = await RawClient.connect(proc.url);
    await client.sendFrame({ id: 1, op: 'kv.set', args: { key: 'k', value: 'v' }, requestId: 'req-kv' });
    const reused = await client.sendFrame({ id: 2, op: 'kv.delete', args: { key: 'k' }, requestId: 'req-kv' });
    client.close();
    expect(reused).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
  });
});
