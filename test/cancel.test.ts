import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeRecord } from '@kindling/protocol';
import { createCrashShim, type CrashShim } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

// A client may take back a request that still waits for its turn: it is refused and nothing ran.
let shim: CrashShim;
let proc: AgentProcess;
beforeAll(async () => {
  shim = await createCrashShim(['qemu-img']);
  proc = await startAgentProcess({ pathPrefix: [shim.dir] });
});
afterAll(async () => {
  await proc?.dispose();
  await shim?.dispose();
});

describe('cancelling a queued request', () => {
  it('refuses a request still waiting for its volume lock; one already running runs on', async () => {
    const client = await RawClient.connect(proc.url);
    const made = await client.call('volume.create', { backend: 'nfs', size: 1 });
    const volume = (made as { result: VolumeRecord }).result;
    // The first extend holds the volume's lock while its qemu-img resize stalls.
    const armed = await shim.arm({ command: 'qemu-img', args: ['resize'], at: 'before' });
    const running = client.sendFrame({ id: 100, op: 'volume.extend', args: { id: volume.id, size: 2 }, requestId: 'running' });
    await armed.reached();
    const queued = client.sendFrame({ id: 101, op: 'volume.extend', args: { id: volume.id, size: 3 }, requestId: 'queued' });
    // Behind it, the second waits for the same lock.
    await new Promise((r) => setTimeout(r, 200));

    expect(await client.call('request.cancel', { requestId: 'queued' })).toMatchObject({ ok: true, result: { cancelled: true } });
    expect(await queued).toMatchObject({ ok: false, error: { code: 'CONFLICT', details: { cancelled: true } } });
    expect(await client.call('request.cancel', { requestId: 'running' })).toMatchObject({ ok: true, result: { cancelled: false } });
    expect(await client.call('request.cancel', { requestId: 'never-sent' })).toMatchObject({ ok: true, result: { cancelled: false } });

    await shim.release();
    await running;
    // Nothing of the cancelled request ran: the volume never reached 3 GiB, and a retry gets the same answer.
    const after = await client.call('volume.get', { id: volume.id });
    expect((after as { result: VolumeRecord }).result.size).toBeLessThan(3);
    const retried = await client.sendFrame({ id: 102, op: 'volume.extend', args: { id: volume.id, size: 3 }, requestId: 'queued' });
    expect(retried).toMatchObject({ ok: false, error: { code: 'CONFLICT', details: { cancelled: true } } });
    client.close();
  });
});
