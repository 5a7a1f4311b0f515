import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Progress, TransferTicket, VolumeRecord } from '@kindling/protocol';
import { writePattern } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';
import { call } from './support/storage.js';

// Issue 22, crash safety of copies between agents: the source stalls after its first data record
// (KINDLING_TRANSFER_STALL, a test-only fault point), and either agent is killed mid-copy. No volume
// that reads as complete is left, no temporary file stays, and no transfer credential outlives a restart.

const shareOf = (agent: AgentProcess): string => join(agent.dir, 'share');
const partsIn = async (share: string) => (await readdir(share)).filter((n) => n.includes('.part'));
const sourceOf = ({ url, credential, sizeBytes }: TransferTicket) => ({ url, credential, sizeBytes });

describe('a copy between agents cut by a crash', () => {
  let a: AgentProcess;
  let b: AgentProcess;
  let clientA: RawClient;
  let clientB: RawClient;

  beforeEach(async () => {
    [a, b] = await Promise.all([startAgentProcess({ env: { KINDLING_TRANSFER_STALL: 'after-first' } }), startAgentProcess()]);
    [clientA, clientB] = await Promise.all([RawClient.connect(a.url), RawClient.connect(b.url)]);
  });
  afterEach(async () => {
    clientA?.close();
    clientB?.close();
    await Promise.all([a?.dispose(), b?.dispose()]);
  });

  /** Starts a copy of a new source volume on A into B, and resolves once B has written its first data. */
  const copyUnderway = async () => {
    const source = await call<VolumeRecord>(clientA, 'volume.create', { backend: 'nfs', size: 1 });
    await writePattern(shareOf(a), source, 0x42);
    const ticket = await call<TransferTicket>(clientA, 'transfer.open', { volumeId: source.id });
    const requestId = `copy-${source.id}`;
    const reply = clientB.sendFrame({ id: 99, op: 'volume.copyFrom', args: { backend: 'nfs', source: sourceOf(ticket) }, requestId });
    for (;;) {
      const started = clientB.events
        .filter((e) => e.event === 'progress')
        .map((e) => e.resource as Progress)
        .find((p) => p.op === 'volume.copyFrom' && p.doneBytes > 0);
      if (started) return { source, reply, requestId, copyId: started.id };
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  it('the target killed mid-copy: after its restart the new volume is error, its temporary files gone, the source free', async () => {
    const { source, requestId, copyId } = await copyUnderway();
    expect(await partsIn(shareOf(b))).not.toEqual([]);
    clientB.close();
    await b.kill();
    b = await b.restart();
    clientB = await RawClient.connect(b.url);
    expect(await call<VolumeRecord>(clientB, 'volume.get', { id: copyId })).toMatchObject({ status: 'error' });
    expect(await partsIn(shareOf(b))).toEqual([]);
    // A retry with the same request id answers what the first came to (the volume's kept error), and makes no second copy.
    const retry = await clientB.sendFrame({ id: 7, op: 'volume.copyFrom', args: { backend: 'nfs', source: { url: `http://127.0.0.1:1/transfer/${source.id}`, credential: 'x'.repeat(43), sizeBytes: 1 } }, requestId });
    expect(retry.ok).toBe(false);
    expect((await call<{ volumes: VolumeRecord[] }>(clientB, 'volume.list', {})).volumes.map((v) => v.id)).toEqual([copyId]);
    // The source's stream ended with its reader: its lock is free again.
    expect(await call<VolumeRecord>(clientA, 'volume.delete', { id: source.id })).toMatchObject({ status: 'deleted' });
    // Two agent starts and a restart: more than the default deadline on a loaded machine.
  }, 90_000);

  it('the source killed mid-copy: the target fails clean, and no credential works after the source restarts', async () => {
    const { reply, copyId } = await copyUnderway();
    const spare = await call<TransferTicket>(clientA, 'transfer.open', { volumeId: (await call<VolumeRecord>(clientA, 'volume.create', { backend: 'nfs', size: 1 })).id });
    clientA.close();
    await a.kill();
    const failed = await reply;
    expect(failed.ok ? null : failed.error.code).toBe('BACKEND_ERROR');
    expect(await call<VolumeRecord>(clientB, 'volume.get', { id: copyId })).toMatchObject({ status: 'error' });
    expect(await partsIn(shareOf(b))).toEqual([]);

    a = await a.restart({});
    clientA = await RawClient.connect(a.url);
    // The restarted agent listens on another port: the same transfer id and credential, asked of it.
    const url = new URL(spare.url);
    url.port = String(a.port);
    expect((await fetch(url, { headers: { authorization: `Bearer ${spare.credential}` } })).status).toBe(401);
  });
});
