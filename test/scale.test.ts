import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LIST_REPLY_BYTES, type ReplyFrame, type SnapshotRecord, type VolumeListing } from '@kindling/protocol';
import { Agent } from '@kindling/sdk';
import { IndexStore, relayTo, snapshotRecord, writeVolumeDataset, type Relay } from '@kindling/agent/testing';
import { runCli } from '../packages/cli/src/testing/run-cli.js';
import { TEST_TOKEN, startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

const COUNT = 20_000;
const SNAPSHOTS = 1_500;
// About 900 bytes a record: the whole list (18 MB) passes the agent's 16 MiB unread-bytes limit in one frame.
const metadata = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`key-${i}`, 'v'.repeat(100)]));

let proc: AgentProcess;
let relay: Relay;
const ids: string[] = [];

beforeAll(async () => {
  proc = await startAgentProcess({
    // Info: the check of storage after ready logs when it is done.
    args: ['--log-level', 'info'],
    backends: (dir) => [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'raw', sparse: true, maxOverSubscriptionRatio: 1e6 }],
  });
  await proc.stop();
  // Records written straight into the index with their files on the share, as `reindex` adopts a share.
  ids.push(...(await writeVolumeDataset(join(proc.dir, 'data'), COUNT, { share: join(proc.dir, 'share'), metadata })).ids);
  // One volume with more snapshots than one page holds (records only: storage has none of them).
  const index = await IndexStore.open(join(proc.dir, 'data', 'index'));
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
    // The client's redial waits until the delete is done: its resync must be the one to learn of it.
    const release = relay.hold();
    relay.cutAll();
    await new Promise<void>((resolve) => agent.once('disconnect', () => resolve()));
    expect(await client.call('volume.delete', { id: ids[6] })).toMatchObject({ ok: true });
    ids.splice(6, 1);
    client.close();
    const before = relay.sent();
    const reconnected = new Promise<void>((resolve) => agent.once('reconnect', () => resolve()));
    release();
    await reconnected;
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

  // Last: the agent restarts on another port.
  it('after a kill it serves at once; the SDK and `kindling volume list -o jsonl` list every volume; one check after ready compares all of storage', async () => {
    await proc.kill();
    proc = await proc.restart();
    const agent = await Agent.connect(proc.url);
    let disconnects = 0;
    agent.on('disconnect', () => disconnects++);
    const volumes = await (await agent.backend('nfs')).volumes();
    expect(new Set(volumes.map((v) => v.id))).toEqual(new Set(ids));

    const cli = await runCli(['volume', 'list', '-o', 'jsonl'], { env: { KINDLING_URL: proc.url, KINDLING_TOKEN: TEST_TOKEN } });
    expect(cli.code).toBe(0);
    const lines = cli.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(ids.length);
    expect(new Set(lines.map((l) => (JSON.parse(l) as { id: string }).id))).toEqual(new Set(ids));
    expect(disconnects).toBe(0);
    await agent.close();

    // The one read of storage after ready, its findings on /metrics: every volume's file found, and
    // the snapshot records this test wrote without storage named as such.
    await proc.logged('storage check of nfs after ready done');
    expect(proc.stderr().match(/storage check of nfs after ready done/g)).toHaveLength(1);
    const metrics = await (await fetch(new URL('/metrics', proc.url.replace(/^ws/, 'http')), { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text();
    expect(metrics).toMatch(/^kindling_storage_not_in_index\{backend="nfs"\} 0$/m);
    expect(metrics).toMatch(new RegExp(`^kindling_index_not_on_storage\\{backend="nfs"\\} ${SNAPSHOTS}$`, 'm'));
  }, 300_000);
});
