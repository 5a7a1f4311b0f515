import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { createCrashShim, readsPattern, writePattern, type CrashShim } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';
import { call, listAll } from './support/storage.js';

// Issue 18, finding 6: two agents on one NFS share (one per Kubernetes node is natural). Agent A's
// clone is held mid-copy by the crash shim (its `.part` and the source's temporary snapshot on the
// share) while agent B is killed and restarted: B's recovery leaves A's files alone (reported as
// strays), and A's clone then finishes with all its data.

const PATTERN = 0x5c;

describe('two agents on one NFS share', () => {
  let share: string;
  let shim: CrashShim;
  let a: AgentProcess;
  let b: AgentProcess;

  const onShare = (pathPrefix: string[] = []) =>
    startAgentProcess({ pathPrefix, backends: () => [{ name: 'nfs', driver: 'nfs', shares: [share], format: 'qcow2' }] });

  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-shared-'));
    shim = await createCrashShim(['qemu-img']);
    a = await onShare([shim.dir]);
    b = await onShare();
  });
  afterEach(async () => {
    await shim?.release();
    await a?.dispose();
    await b?.dispose();
    await shim?.dispose();
    await rm(share, { recursive: true, force: true });
  });

  it("a restart of one never removes, commits or unlinks the other's work in progress", async () => {
    expect(a.hostId).not.toBe(b.hostId);
    const clientA = await RawClient.connect(a.url);
    const clientB = await RawClient.connect(b.url);
    try {
      // B has a volume of its own with a snapshot: its files are on the share too.
      const own = await call<VolumeRecord>(clientB, 'volume.create', { backend: 'nfs', size: 1 });
      await call<SnapshotRecord>(clientB, 'snapshot.create', { volumeId: own.id });

      const source = await call<VolumeRecord>(clientA, 'volume.create', { backend: 'nfs', size: 1 });
      await writePattern(share, source, PATTERN);
      const held = await shim.arm({ command: 'qemu-img', args: ['convert'], at: 'hold' });
      const cloning = call<VolumeRecord>(clientA, 'volume.clone', { id: source.id, size: 2 });
      await held.reached();
      const inFlight = (await readdir(share)).filter((n) => n.includes('.part') || n.includes('tmp-snap-'));
      expect(inFlight.length).toBeGreaterThan(0);

      clientB.close();
      await b.kill();
      b = await b.restart();
      // Every one of A's files in progress was found, reported as another agent's, and left.
      for (const name of inFlight) {
        expect(await readdir(share)).toContain(name);
        // After a kill with nothing of its own in flight, B reads storage after ready, as it serves.
        await b.logged(`left alone on nfs, not Kindling's: ${join(share, name)} (another agent's`);
      }

      await held.resume();
      const clone = await cloning;
      expect(clone.status).toBe('available');
      expect(await readsPattern(share, clone, PATTERN)).toBe(true);
      expect(await readsPattern(share, await call<VolumeRecord>(clientA, 'volume.get', { id: source.id }), PATTERN)).toBe(true);

      // B's own volume and snapshot came through its restart whole.
      const afterB = await RawClient.connect(b.url);
      const { volumes, snapshots } = await listAll(afterB);
      afterB.close();
      expect(volumes.map((v) => [v.id, v.status])).toEqual([[own.id, 'available']]);
      expect(snapshots.map((s) => s.status)).toEqual(['available']);
      // Nothing of A's work is left on the share: its temporary names are gone, its volumes are whole.
      expect((await readdir(share)).filter((n) => n.includes('.part-') || n.includes('tmp-snap-') || n.includes('.claim-'))).toEqual([]);
    } finally {
      clientA.close();
      clientB.close();
    }
  });
});
