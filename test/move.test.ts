import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventFrame, SnapshotRecord, TransferTicket, VolumeRecord } from '@kindling/protocol';
import { readsPattern, writePattern } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';
import { call } from './support/storage.js';

// Issue 22, volumes that move: two real agents on this machine, each with an NFS backend on a local
// folder. The source mints a one-time credential for one read; the target pulls the data into a new
// volume of its own, checks the source's digest, and publishes it.

const READ_TOKEN = 'kindling-read-token-0123456789abcdef';
const MiB = 1024 * 1024;
const shareOf = (agent: AgentProcess): string => join(agent.dir, 'share');

/** The transfer stream's records (transfer/wire.ts), read without the agent's code: what a target sees. */
function records(body: Buffer): { data: { offset: number; length: number }[]; end: boolean } {
  const data: { offset: number; length: number }[] = [];
  let at = 0;
  let end = false;
  while (at < body.length) {
    const kind = body.readUInt8(at);
    const offset = Number(body.readBigUInt64BE(at + 1));
    const length = body.readUInt32BE(at + 9);
    if (kind === 1) data.push({ offset, length });
    else end = true;
    at += 13 + length;
  }
  return { data, end };
}

const fetchTransfer = (ticket: TransferTicket, credential?: string) =>
  fetch(ticket.url, credential === undefined ? {} : { headers: { authorization: `Bearer ${credential}` } });

/** What `volume.copyFrom` takes of a ticket. */
const sourceOf = ({ url, credential, sizeBytes }: TransferTicket) => ({ url, credential, sizeBytes });

const partsIn = async (share: string) => (await readdir(share)).filter((n) => n.includes('.part'));

describe('copying a volume to another agent', () => {
  let a: AgentProcess;
  let b: AgentProcess;
  let clientA: RawClient;
  let clientB: RawClient;

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startAgentProcess({ config: { readTokens: [READ_TOKEN] } }),
      startAgentProcess({
        backends: (dir) => [
          { name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'raw' },
          { name: 'nfsq', driver: 'nfs', shares: [join(dir, 'qcow2')], format: 'qcow2' },
        ],
      }),
    ]);
    [clientA, clientB] = await Promise.all([RawClient.connect(a.url), RawClient.connect(b.url)]);
  });
  afterAll(async () => {
    clientA?.close();
    clientB?.close();
    await Promise.all([a?.dispose(), b?.dispose()]);
  });

  const sourceWith = async (pattern: number): Promise<VolumeRecord> => {
    const volume = await call<VolumeRecord>(clientA, 'volume.create', { backend: 'nfs', size: 1 });
    await writePattern(shareOf(a), volume, pattern);
    return volume;
  };

  it('serves one read per credential, sends only the data ranges, and never logs the credential', async () => {
    const volume = await sourceWith(0x3c);
    const ticket = await call<TransferTicket>(clientA, 'transfer.open', { volumeId: volume.id });
    expect(ticket).toMatchObject({ source: { kind: 'volume', id: volume.id }, sizeBytes: 1024 * MiB, size: 1 });
    expect(ticket.credential).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ticket.url.startsWith(a.url.replace(/^ws/, 'http').replace(/\/rpc$/, ''))).toBe(true);

    expect((await fetchTransfer(ticket)).status).toBe(401);
    expect((await fetchTransfer(ticket, 'A'.repeat(43))).status).toBe(401);
    // The agent's own token opens no transfer either: the route takes only its credential.
    expect((await fetchTransfer(ticket, process.env.KINDLING_TOKEN)).status).toBe(401);

    const served = await fetchTransfer(ticket, ticket.credential);
    expect(served.status).toBe(200);
    const stream = records(Buffer.from(await served.arrayBuffer()));
    expect(stream.end).toBe(true);
    // The pattern covers the first MiB; the other 1023 MiB are a hole and are not sent.
    expect(stream.data.reduce((sum, r) => sum + r.length, 0)).toBe(MiB);
    expect(stream.data.every((r) => r.offset + r.length <= MiB)).toBe(true);

    expect((await fetchTransfer(ticket, ticket.credential)).status).toBe(401);
    expect(a.stderr()).not.toContain(ticket.credential);
  });

  it('opens transfers for admin sessions only', async () => {
    const volume = await sourceWith(0x3d);
    const reader = await RawClient.connect(a.url, READ_TOKEN);
    try {
      const reply = await reader.call('transfer.open', { volumeId: volume.id });
      expect(reply.ok ? null : reply.error.code).toBe('UNAUTHORIZED');
    } finally {
      reader.close();
    }
    const both = await clientA.call('transfer.open', { volumeId: volume.id, snapshotId: volume.id });
    expect(both.ok ? null : both.error.code).toBe('INVALID_ARGUMENT');
  });

  it('the target pulls a volume into a new one of its own, with its data, reporting progress', async () => {
    const volume = await sourceWith(0x5a);
    const ticket = await call<TransferTicket>(clientA, 'transfer.open', { volumeId: volume.id });
    const copy = await call<VolumeRecord>(clientB, 'volume.copyFrom', { backend: 'nfs', source: sourceOf(ticket), name: 'moved' });
    expect(copy).toMatchObject({ status: 'available', size: 1, name: 'moved', backend: 'nfs' });
    expect(await readsPattern(shareOf(b), copy, 0x5a)).toBe(true);
    const progress = clientB.events.filter((e: EventFrame) => e.event === 'progress' && e.resource.id === copy.id);
    expect(progress.at(-1)?.resource).toMatchObject({ op: 'volume.copyFrom', doneBytes: 1024 * MiB, totalBytes: 1024 * MiB });
    expect(await partsIn(shareOf(b))).toEqual([]);

    // A used credential is refused, and leaves no volume behind.
    const before = (await call<{ volumes: VolumeRecord[] }>(clientB, 'volume.list', {})).volumes.length;
    const again = await clientB.call('volume.copyFrom', { backend: 'nfs', source: sourceOf(ticket) });
    expect(again.ok ? null : again.error.code).toBe('UNAUTHORIZED');
    expect((await call<{ volumes: VolumeRecord[] }>(clientB, 'volume.list', {})).volumes.length).toBe(before);
  });

  it('copies a snapshot as it was taken, into a larger qcow2 volume when asked', async () => {
    const volume = await sourceWith(0x11);
    const snapshot = await call<SnapshotRecord>(clientA, 'snapshot.create', { volumeId: volume.id });
    await writePattern(shareOf(a), volume, 0x22);
    const ticket = await call<TransferTicket>(clientA, 'transfer.open', { snapshotId: snapshot.id });
    expect(ticket.source).toEqual({ kind: 'snapshot', id: snapshot.id });
    const copy = await call<VolumeRecord>(clientB, 'volume.copyFrom', { backend: 'nfsq', source: sourceOf(ticket), size: 2 });
    expect(copy).toMatchObject({ status: 'available', size: 2, location: { format: 'qcow2' } });
    expect(await readsPattern(join(b.dir, 'qcow2'), copy, 0x11)).toBe(true);
    expect(await partsIn(join(b.dir, 'qcow2'))).toEqual([]);
  });
});
