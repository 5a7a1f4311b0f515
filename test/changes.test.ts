import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type ChangesResult, type EventFrame, type HelloResult, type ReplyFrame, type VolumeRecord } from '@kindling/protocol';
import { Agent, type Volume } from '@kindling/sdk';
import { IndexStore, volumeRecord } from '@kindling/agent/testing';
import { Relay } from '../packages/sdk/src/testing/relay.js';
import { TEST_TOKEN, startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

const READ_TOKEN = 'kindling-changes-read-token-0123456789';
/** Volumes held that exist only in the index: what a re-read of every held volume would cost. */
const HELD = 60;

let proc: AgentProcess;
let relay: Relay;

/** A port free now, so the agent keeps it across restarts and the relay in front stays valid. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The agent's count of each op answered, from /metrics. */
async function opCounts(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${proc.port}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text();
  const counts = new Map<string, number>();
  for (const [, op, n] of text.matchAll(/^kindling_ops_total\{op="([^"]+)",outcome="[^"]+"\} (\d+)$/gm)) counts.set(op!, (counts.get(op!) ?? 0) + Number(n));
  return counts;
}
const delta = (before: Map<string, number>, after: Map<string, number>, op: string) => (after.get(op) ?? 0) - (before.get(op) ?? 0);

const result = <T>(reply: ReplyFrame): T => {
  if (!reply.ok) throw new Error(`${reply.error.code}: ${reply.error.message}`);
  return reply.result as T;
};

beforeAll(async () => {
  proc = await startAgentProcess({ port: await freePort(), config: { readTokens: [READ_TOKEN] } });
  await proc.stop();
  const index = await IndexStore.open(join(proc.dir, 'data', 'index'));
  await Promise.all(Array.from({ length: HELD }, () => index.putVolume(volumeRecord(randomUUID(), { name: 'held' }))));
  await index.close();
  proc = await proc.restart();
  relay = await Relay.start(proc.port);
}, 60_000);
afterAll(async () => {
  await relay?.close();
  await proc?.dispose();
});

describe('the change sequence on the wire', () => {
  it('hello names the position; pushes carry the sequence; changes.list pages the newest states and tombstones', async () => {
    const { epoch, seq: start } = (await helloOf(proc.url)).changes!;
    const client = await RawClient.connect(proc.url);
    const a = result<VolumeRecord>(await client.call('volume.create', { backend: 'nfs', size: 1, name: 'a' }));
    const b = result<VolumeRecord>(await client.call('volume.create', { backend: 'nfs', size: 1, name: 'b' }));
    expect(await client.call('volume.delete', { id: a.id })).toMatchObject({ ok: true });
    const pushed = client.events.filter((e): e is EventFrame & { seq: number } => typeof e.seq === 'number');
    expect(pushed.length).toBeGreaterThan(0);
    expect(pushed.every((e) => e.seq >= start)).toBe(true);

    const first = result<ChangesResult>(await client.call('changes.list', { epoch, since: start, limit: 1 }));
    expect(first).toMatchObject({ history: 'complete', epoch, nextCursor: expect.any(String) });
    const rest = result<ChangesResult>(await client.call('changes.list', { epoch, since: start, limit: 1000, cursor: first.history === 'complete' ? first.nextCursor! : '' }));
    if (first.history !== 'complete' || rest.history !== 'complete') throw new Error('history should reach back');
    const changes = [...first.changes, ...rest.changes];
    // One entry per record, at its newest state: a's tombstone, b as it is now.
    expect(changes.map((c) => [c.id, (c.record as VolumeRecord | null)?.status ?? null])).toEqual([
      [b.id, 'available'],
      [a.id, null],
    ]);
    expect(rest.nextCursor).toBeNull();
    expect(rest.seq).toBeGreaterThanOrEqual(Math.max(...changes.map((c) => c.seq)));

    // Another index's position, or one older than what is kept: the caller is told to read everything.
    expect(result(await client.call('changes.list', { epoch: 'another-index', since: 0, limit: 10 }))).toMatchObject({ history: 'gone', epoch });
    // A read-only session may follow changes: it looks and changes nothing.
    const reader = await RawClient.connect(proc.url, READ_TOKEN);
    expect(result(await reader.call('changes.list', { epoch, since: start, limit: 10 }))).toMatchObject({ history: 'complete' });
    reader.close();
    client.close();
  });

  it('a session that follows some volumes is pushed only what concerns them', async () => {
    const admin = await RawClient.connect(proc.url);
    const followed = result<VolumeRecord>(await admin.call('volume.create', { backend: 'nfs', size: 1 }));
    const other = result<VolumeRecord>(await admin.call('volume.create', { backend: 'nfs', size: 1 }));
    const narrow = await RawClient.connect(proc.url);
    expect(result(await narrow.call('events.follow', { volumeIds: [followed.id] }))).toEqual({ following: 'some' });
    await admin.call('volume.extend', { id: other.id, size: 2 });
    await admin.call('snapshot.create', { volumeId: other.id });
    await admin.call('volume.extend', { id: followed.id, size: 2 });
    while (!narrow.events.some((e) => e.event === 'volume' && e.resource.id === followed.id && e.resource.size === 2)) await new Promise((r) => setTimeout(r, 20));
    const about = narrow.events.flatMap((e) => (e.event === 'volume' ? [e.resource.id] : e.event === 'snapshot' ? [e.resource.volumeId] : []));
    expect(new Set(about)).toEqual(new Set([followed.id]));
    // The SDK's `follow: 'held'`: pushes of what this Agent holds, not of the rest of the agent.
    const sdk = await Agent.connect(proc.url, { follow: 'held' });
    const sdkNfs = await sdk.backend('nfs');
    const [held] = await sdkNfs.volumesFiltered({ volumeId: followed.id });
    const heard: EventFrame[] = [];
    sdk.on('event', (frame) => heard.push(frame));
    await admin.call('volume.extend', { id: other.id, size: 3 });
    await admin.call('volume.extend', { id: followed.id, size: 3 });
    while (held!.size !== 3) await new Promise((r) => setTimeout(r, 20));
    expect(heard.filter((e) => e.event === 'volume').map((e) => e.resource)).toEqual([expect.objectContaining({ id: followed.id, status: 'extending' }), expect.objectContaining({ id: followed.id, size: 3 })]);
    // What it creates it holds, so it hears of it.
    const mine = await sdkNfs.createVolume({ size: 1 });
    await admin.call('volume.extend', { id: mine.id, size: 2 });
    while (mine.size !== 2) await new Promise((r) => setTimeout(r, 20));
    await sdk.close();
    narrow.close();
    admin.close();
  });
});

describe('an Agent after a reconnect', () => {
  it('reads only what changed while away: one changes.list, no re-read of the volumes it holds', async () => {
    const direct = await Agent.connect(proc.url);
    const watcher = await Agent.connect(relay.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, keepaliveMs: 100 });
    const nfs = await watcher.backend('nfs');
    const [grown, snapped, doomed, attached] = await Promise.all([1, 2, 3, 4].map(() => nfs.createVolume({ size: 1 })));
    const older = await snapped!.createSnapshot({ name: 'before' });
    const connection = await attached!.attach();
    // Made and pushed before the cut, unchanged since: the pushes moved the client's place past them.
    for (let i = 0; i < 10; i++) await nfs.createVolume({ size: 1 });
    const held = await nfs.volumes();
    expect(held.length).toBeGreaterThanOrEqual(HELD + 14);

    relay.cut();
    await once(watcher, 'disconnect');
    const byId = async (v: Volume) => (await (await direct.backend('nfs')).volumesFiltered({ volumeId: v.id }))[0]!;
    await (await byId(grown!)).extend(2);
    const there = await byId(snapped!);
    await [...there.snapshots][0]!.delete();
    const snap = await there.createSnapshot({ name: 'while-away' });
    await (await byId(doomed!)).delete();
    await (await byId(attached!)).detach();

    const ops = await opCounts();
    const bytes = relay.received;
    relay.heal();
    await once(watcher, 'reconnect');
    expect(grown!.size).toBe(2);
    expect([...snapped!.snapshots].map((s) => [s.id, s.name])).toEqual([[snap.id, 'while-away']]);
    expect(older.status).toBe('deleted');
    expect(doomed!.status).toBe('deleted');
    expect([attached!.status, attached!.connections.length, connection.attached]).toEqual(['available', 0, false]);
    const after = await opCounts();
    expect(delta(ops, after, 'changes.list')).toBe(1);
    expect(delta(ops, after, 'volume.list')).toBe(0);
    // About 2.5 KiB: the hello and the seven records changed while away. Not the held volumes (~60 KiB),
    // nor the ten made before the cut (~6 KiB more).
    expect(relay.received - bytes).toBeLessThan(4 * 1024);
    await watcher.close();
    await direct.close();
  });

  it('reads what it holds again when the history does not reach back (a wiped data dir is another index)', async () => {
    const watcher = await Agent.connect(relay.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, keepaliveMs: 100 });
    const [kept] = await (await watcher.backend('nfs')).volumesFiltered({ volumeName: 'held' });
    const down = once(watcher, 'disconnect');
    await proc.stop();
    await down;
    await rm(join(proc.dir, 'data', 'index'), { recursive: true, force: true });
    const back = once(watcher, 'reconnect');
    proc = await proc.restart();
    await back;
    // The new index never knew it: the held object says so, from a read of what is held, not from a change list.
    expect(kept!.status).toBe('deleted');
    const ops = await opCounts();
    expect(ops.get('changes.list') ?? 0).toBe(0);
    expect(ops.get('volume.list') ?? 0).toBeGreaterThan(0);
    await watcher.close();
  });
});

async function helloOf(url: string): Promise<HelloResult> {
  const client = await RawClient.connect(url, undefined, false);
  const hello = result<HelloResult>(await client.call('hello', { protocolVersion: PROTOCOL_VERSION }));
  client.close();
  return hello;
}
