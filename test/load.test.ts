import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplyFrame, VolumeListing, VolumeRecord } from '@kindling/protocol';
import { TEST_TOKEN, startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

// Many clients at once: storage commands wait for a slot instead of exhausting the agent's descriptors.
let proc: AgentProcess;
beforeAll(async () => {
  proc = await startAgentProcess({ config: { limits: { commands: 16, copies: 2 } } });
});
afterAll(async () => {
  await proc?.dispose();
});

const CLIENTS = 20;
const PER_CLIENT = 100;

describe('2,000 concurrent requests from 20 clients', () => {
  // Room beyond vitest's default 30 s on a busy 2-core runner; nothing here asserts a timing.
  it('all answered, no EMFILE, no error record storage did not cause, commands bounded', async () => {
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => RawClient.connect(proc.url)));
    // NFS creates and stats run no process; snapshots run qemu-img, one volume per client, so more
    // commands want to run at once than the 16 slots.
    const snapped = await Promise.all(
      clients.map(async (client, c) => ((await client.call('volume.create', { backend: 'nfs', size: 1, name: `snapped-${c}` })) as { result: VolumeRecord }).result.id),
    );
    const gauge = async (name: string) =>
      Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`http://127.0.0.1:${proc.port}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text())?.[1]);
    let peak = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) peak = Math.max(peak, await gauge('kindling_commands_running'));
    })();
    const replies = await Promise.all(
      clients.flatMap((client, c) =>
        Array.from({ length: PER_CLIENT }, (_, i): Promise<ReplyFrame> => {
          if (i % 10 === 3) return client.call('snapshot.create', { volumeId: snapped[c]! });
          if (i % 10 === 0) return client.call('volume.create', { backend: 'nfs', size: 1, name: `load-${c}-${i}` });
          if (i % 10 === 5) return client.call('backend.stats', { backend: 'nfs', refresh: i % 20 === 5 });
          return client.call('volume.list', { backend: 'nfs' });
        }),
      ),
    );
    watching = false;
    await watcher;
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(16);
    const failed = replies.filter((r) => !r.ok);
    expect(failed).toEqual([]);

    const listed = await clients[0]!.call('volume.list', { backend: 'nfs' });
    const volumes = (listed as { result: VolumeListing }).result.volumes;
    expect(volumes.length).toBe(CLIENTS * (PER_CLIENT / 10) + CLIENTS);
    const snapshots = await clients[0]!.call('snapshot.list', { backend: 'nfs', limit: 1000 });
    expect((snapshots as { result: { snapshots: unknown[] } }).result.snapshots.length).toBe(CLIENTS * (PER_CLIENT / 10));
    expect(volumes.filter((v: VolumeRecord) => v.status !== 'available')).toEqual([]);
    expect(proc.stderr()).not.toMatch(/EMFILE|ENFILE/);

    expect(await gauge('kindling_commands_waiting')).toBe(0);
    for (const client of clients) client.close();
  }, 180_000);
});
