import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { auditNfsShare, readsPattern, writePattern } from '@kindling/agent/testing';
import type { FaultPoint } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { current, findVolume, patternOf, settleNewVolume, type Op, type Scene } from './support/crash-nfs.js';
import { RawClient } from './support/raw-client.js';
import { call, listAll } from './support/storage.js';

// Issue 18, finding 10: the agent killed between two file-system steps of the NFS driver (a fault
// point, armed with KINDLING_NFS_FAULT: the agent SIGKILLs itself there), not only around a command.
// After the restart nothing is transient; after the retry (or a delete of what failed) the share holds
// exactly what the records say, and every volume reads whole.

interface FsCase {
  point: FaultPoint;
  name: string;
  snapshots: number;
  /** Before the fault is armed. */
  prepare?: (client: RawClient, s: Scene) => Promise<void>;
  op: (s: Scene) => Op;
  settle: (client: RawClient, s: Scene) => Promise<void>;
}

const snapshotNamed = async (client: RawClient, name: string): Promise<SnapshotRecord | undefined> =>
  (await listAll(client)).snapshots.find((s) => s.name === name);

/** A snapshot create after the crash: available, or in error and deleted, then made by a retry. */
async function settleSnapshot(client: RawClient, s: Scene): Promise<void> {
  const made = await snapshotNamed(client, s.name);
  if (made && made.status !== 'available') {
    expect(made.status).toBe('error');
    await call(client, 'snapshot.delete', { id: made.id });
  }
  if (made?.status !== 'available') await call(client, 'snapshot.create', { volumeId: s.vol.id, name: s.name });
  expect((await snapshotNamed(client, s.name))?.status).toBe('available');
}

const createOp = (s: Scene): Op => ['volume.create', { backend: 'qcow2', size: 1, name: s.name }];
const cloneOp = (s: Scene): Op => ['volume.clone', { id: s.vol.id, size: 2, name: s.name }];

const cases: FsCase[] = [
  { point: 'publish:before-rename', name: 'create', snapshots: 0, op: createOp, settle: (c, s) => settleNewVolume(c, s, null, createOp(s)) },
  { point: 'publish:after-rename', name: 'create', snapshots: 0, op: createOp, settle: (c, s) => settleNewVolume(c, s, null, createOp(s)) },
  { point: 'publish:before-rename', name: 'clone', snapshots: 0, op: cloneOp, settle: (c, s) => settleNewVolume(c, s, current(s), cloneOp(s)) },
  { point: 'publish:after-rename', name: 'clone', snapshots: 0, op: cloneOp, settle: (c, s) => settleNewVolume(c, s, current(s), cloneOp(s)) },
  {
    point: 'publish:before-rename',
    name: 'revert',
    snapshots: 1,
    op: (s) => ['volume.revert', { id: s.vol.id, snapshotId: s.snaps[0]!.id }],
    // Recovery finishes an interrupted revert: the volume reads as its snapshot.
    settle: async (c, s) => {
      const vol = (await findVolume(c, (v) => v.id === s.vol.id))!;
      expect(vol.status).toBe('available');
      expect(await readsPattern(s.share, vol, patternOf(0))).toBe(true);
    },
  },
  ...(['snapshot-create:overlay-made', 'snapshot-create:recorded'] as const).map((point) => ({
    point,
    name: 'snapshot create',
    snapshots: 0,
    op: (s: Scene): Op => ['snapshot.create', { volumeId: s.vol.id, name: s.name }],
    settle: settleSnapshot,
  })),
  {
    point: 'snapshot-delete:recorded',
    name: 'snapshot delete',
    snapshots: 1,
    op: (s) => ['snapshot.delete', { id: s.snaps[0]!.id }],
    settle: async (c, s) => {
      const left = (await listAll(c)).snapshots.find((x) => x.id === s.snaps[0]!.id);
      if (left) await call(c, 'snapshot.delete', { id: left.id });
      const vol = (await findVolume(c, (v) => v.id === s.vol.id))!;
      expect(await readsPattern(s.share, vol, current(s))).toBe(true);
    },
  },
  {
    point: 'volume-delete:record-removed',
    name: 'volume delete',
    snapshots: 1,
    // A volume whose snapshot was deleted keeps its record (`.info`), which a delete removes first.
    prepare: async (c, s) => {
      await call(c, 'snapshot.delete', { id: s.snaps[0]!.id });
    },
    op: (s) => ['volume.delete', { id: s.vol.id }],
    settle: async (c, s) => {
      const left = await findVolume(c, (v) => v.id === s.vol.id);
      if (left) await call(c, 'volume.delete', { id: left.id });
      expect(await findVolume(c, (v) => v.id === s.vol.id)).toBeUndefined();
    },
  },
];

describe('NFS: the agent killed between file-system steps', () => {
  let proc: AgentProcess;
  const share = () => join(proc.dir, 'share');

  beforeAll(async () => {
    proc = await startAgentProcess({ backends: (dir) => [{ name: 'qcow2', driver: 'nfs', shares: [join(dir, 'share')], format: 'qcow2' }] });
  });
  afterAll(async () => {
    await proc?.dispose();
  });

  async function audit(client: RawClient, when: string): Promise<void> {
    const { volumes, snapshots } = await listAll(client);
    const found = await auditNfsShare(share(), volumes, snapshots);
    found.leftovers = found.leftovers.filter((f) => !f.startsWith('.kindling-probe-'));
    expect(found, when).toEqual({ transient: [], broken: [], leftovers: [] });
  }

  for (const [index, c] of cases.entries()) {
    it(`${c.name}, killed at ${c.point}`, async () => {
      let client = await RawClient.connect(proc.url);
      let vol = await call<VolumeRecord>(client, 'volume.create', { backend: 'qcow2', size: 1, name: `fs-source-${index}` });
      const snaps: SnapshotRecord[] = [];
      for (let i = 0; i <= c.snapshots; i++) {
        await writePattern(share(), vol, patternOf(i));
        if (i === c.snapshots) break;
        snaps.push(await call<SnapshotRecord>(client, 'snapshot.create', { volumeId: vol.id, name: `s${i}` }));
        vol = await call<VolumeRecord>(client, 'volume.get', { id: vol.id });
      }
      const scene: Scene = { backend: 'qcow2', share: share(), vol, snaps, name: `fs-new-${index}` };
      await c.prepare?.(client, scene);
      client.close();

      proc = await proc.restart({ KINDLING_NFS_FAULT: c.point });
      client = await RawClient.connect(proc.url);
      const dead = new Promise<void>((resolve) => proc.child.once('exit', () => resolve()));
      // No reply ever comes: the agent dies on the way.
      void client.call(...c.op(scene));
      await dead;
      client.close();
      expect(proc.child.signalCode, 'the agent killed itself at the fault point').toBe('SIGKILL');

      proc = await proc.restart({});
      client = await RawClient.connect(proc.url);
      try {
        const { volumes, snapshots } = await listAll(client);
        expect([...volumes, ...snapshots].filter((r) => ['creating', 'deleting', 'extending', 'reverting'].includes(r.status))).toEqual([]);
        await c.settle(client, scene);
        await audit(client, 'after the retry');
        for (const s of (await listAll(client)).snapshots.reverse()) await call(client, 'snapshot.delete', { id: s.id });
        for (const v of (await listAll(client)).volumes) await call(client, 'volume.delete', { id: v.id });
        await audit(client, 'after deleting everything');
      } finally {
        client.close();
      }
    });
  }
});
