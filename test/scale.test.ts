import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LIST_REPLY_BYTES, type ReplyFrame, type SnapshotRecord, type VolumeListing } from '@kindling/protocol';
import { Agent } from '@kindling/sdk';
import { IndexStore, relayTo, snapshotRecord, volumeRecord, type Relay } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

const COUNT = 20_000;
const SNAPSHOTS = 1_500;
// About 900 bytes a record: the whole list (18 MB) passes the agent's 16 MiB unread-bytes limit in one frame.
const metadata = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`key-${i}`, 'v'.repeat(100)]));

let proc: AgentProcess;
let relay: Relay;
const ids: string[] = [];

beforeAll(async () => {
  proc = await startAgentProcess();
  await proc.stop();
  // Records written straight into the index, as `reindex` adopts a share: what is listed is the index.
  const index = await IndexStore.open(join(proc.dir, 'data', 'index'));
  for (let i = 0; i < COUNT; i += 500) {
    const chunk = Array.from({ length: Math.min(500, COUNT - i) }, (_, j) => volumeRecord(randomUUID(), { name: `vol-${i + j}`, metadata }));
    await Promise.all(chunk.map((record) => index.putVolume(record)));
    ids.push(...chunk.map((r) => r.id));
  }
  // One volume with more snapshots than one page holds.
  for (let i = 0; i < SNAPSHOTS; i += 500) {
    await Promise.all(
      Array.from({ length: 500 }, () => index.putSnapshot(snapshotRecord(randomUUID(), ids[0]!))),
    );
  }
  await index.close();
  proc = await proc.restart();
  relay = await relayTo(proc.url);
}, 300_000);
afterAll(async () => {
  await relay?.close();
  await proc?.dispose();
});

describe(`an agent with ${COUNT} volumes`, () => {
  it('lists every volume through the SDK in pages: no frame over the bound, the session never cut', async () => {
    const agent = await Agent.connect(relay.url);
    let disconnects = 0;
    agent.on('disconnect', () => disconnects++);
    const volumes = await (await agent.backend('nfs')).volumes();
    expect(volumes.length).toBe(COUNT);
    expect(new Set(volumes.map((v) => v.id))).toEqual(new Set(ids));
    expect(relay.largestFrame()).toBeLessThanOrEqual(MAX_LIST_REPLY_BYTES);
    expect(disconnects).toBe(0);

    // A reconnect resyncs the identity map in pages too: the session that follows stays up.
    relay.cutAll();
    await new Promise<void>((resolve) => agent.once('reconnect', () => resolve()));
    expect(await (await agent.backend('nfs')).volumesFiltered({ volumeName: 'vol-7' })).toHaveLength(1);
    expect(disconnects).toBe(1);
    expect(relay.largestFrame()).toBeLessThanOrEqual(MAX_LIST_REPLY_BYTES);
    await agent.close();
  }, 300_000);

  it('a client following a few volumes resyncs only those after a reconnect, not the whole agent', async () => {
    const agent = await Agent.connect(relay.url);
    const nfs = await agent.backend('nfs');
    const followed = await nfs.volumesFiltered({ volumeId: ids[5] });
    const doomed = await nfs.volumesFiltered({ volumeId: ids[6] });
    // Gone behind the client's back while its link is down: the resync must say so.
    const client = await RawClient.connect(proc.url);
    relay.cutAll();
    await new Promise<void>((resolve) => agent.once('disconnect', () => resolve()));
    expect(await client.call('volume.delete', { id: ids[6] })).toMatchObject({ ok: true });
    ids.splice(6, 1);
    client.close();
    const before = relay.sent();
    await new Promise<void>((resolve) => agent.once('reconnect', () => resolve()));
    // A page of the whole agent is up to 1 MiB; the two followed volumes are a few KiB.
    expect(relay.sent() - before).toBeLessThan(64 * 1024);
    expect(followed[0]!.status).toBe('available');
    expect(doomed[0]!.status).toBe('deleted');
    await agent.close();
  }, 60_000);

  it('pages in id order with limit and cursor; a client that sends no limit gets a refusal, never a short list', async () => {
    const client = await RawClient.connect(proc.url);
    const first = (await client.call('volume.list', { limit: 3 })) as ReplyFrame & { result: VolumeListing };
    const sorted = [...ids].sort();
    expect(first.result.volumes.map((v) => v.id)).toEqual(sorted.slice(0, 3));
    const second = (await client.call('volume.list', { limit: 3, cursor: first.result.nextCursor })) as ReplyFrame & { result: VolumeListing };
    expect(second.result.volumes.map((v) => v.id)).toEqual(sorted.slice(3, 6));
    const last = (await client.call('volume.list', { limit: 3, cursor: sorted.at(-2) })) as ReplyFrame & { result: VolumeListing };
    expect(last.result).toMatchObject({ volumes: [{ id: sorted.at(-1) }], nextCursor: null });

    expect(await client.call('volume.list', { limit: 1001 })).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
    const sdk = await Agent.connect(proc.url);
    const [withSnapshots] = await (await sdk.backend('nfs')).volumesFiltered({ volumeId: ids[0] });
    expect(withSnapshots!.snapshots.size).toBe(SNAPSHOTS);
    await withSnapshots!.refresh();
    expect(withSnapshots!.snapshots.size).toBe(SNAPSHOTS);
    await sdk.close();
    expect(await client.call('volume.list', {})).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/page with limit and cursor/) } });
    client.close();
  }, 60_000);

  it('pages snapshots, connections and backends the same way', async () => {
    const client = await RawClient.connect(proc.url);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const reply = (await client.call('snapshot.list', { volumeId: ids[0], limit: 1000, cursor })) as ReplyFrame & {
        result: { snapshots: SnapshotRecord[]; nextCursor: string | null };
      };
      seen.push(...reply.result.snapshots.map((s) => s.id));
      cursor = reply.result.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(seen).toHaveLength(SNAPSHOTS);
    expect(seen).toEqual([...seen].sort());
    expect(await client.call('snapshot.list', { backend: 'nfs' })).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
    expect(await client.call('snapshot.list', { backend: 'nfs', limit: 2 })).toMatchObject({ ok: true, result: { snapshots: [{}, {}], nextCursor: expect.any(String) } });
    expect(await client.call('connection.list', { volumeId: ids[1], limit: 10 })).toMatchObject({ ok: true, result: { connections: [], nextCursor: null } });
    expect(await client.call('backend.list', { limit: 1 })).toMatchObject({ ok: true, result: { backends: [{ name: 'nfs' }], nextCursor: null } });
    client.close();
  }, 60_000);
});
