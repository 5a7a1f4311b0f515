import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { auditNfsShare, createCrashShim, readsPattern, writePattern, type CrashShim, type StallRule } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { RawClient } from './raw-client.js';
import { call, listAll } from './storage.js';

// The crash-injection harness of issue 9 for NFS: a shim on the agent's PATH stalls one qemu-img (or
// truncate) call before or after it runs, the agent is SIGKILLed alone or with its children, and
// after a restart: nothing transient, no settled record whose storage is missing, short or
// incomplete, nothing on the share no record accounts for, and a retry (or a delete of the error
// record) finishes. Volumes are 1 GiB sparse; data is a byte pattern over the first MiB.

export const AB = 0xab;
/** Snapshot i of a scene holds PATTERNS[i]; the volume the one after the last snapshot's. */
const PATTERNS = [AB, 0xcd, 0xef];

export type Backend = 'qcow2' | 'raw';
export const BACKENDS = ['qcow2', 'raw'] as const;
export type Op = [string, Record<string, unknown>];

/** What a case starts from: a volume holding a pattern, and snapshots each followed by a new pattern. */
export interface Scene {
  backend: Backend;
  share: string;
  vol: VolumeRecord;
  /** Oldest first. */
  snaps: SnapshotRecord[];
  /** The name the interrupted operation gives what it makes, unique to the case. */
  name: string;
}

export interface Case {
  name: string;
  backend: Backend;
  snapshots: number;
  rule: Omit<StallRule, 'at'>;
  /** The interrupted operation. */
  op: (s: Scene) => Op;
  /** After the restart: checks what the user sees, retries or deletes until the operation is done. */
  settle: (client: RawClient, s: Scene) => Promise<void>;
}

/** The pattern the scene's volume reads. */
export const current = (s: Scene): number => PATTERNS[s.snaps.length]!;
export const patternOf = (snapshotIndex: number): number => PATTERNS[snapshotIndex]!;

export const findVolume = async (client: RawClient, pred: (v: VolumeRecord) => boolean): Promise<VolumeRecord | undefined> =>
  (await listAll(client)).volumes.find(pred);

const send = <T>(client: RawClient, [op, args]: Op): Promise<T> => call<T>(client, op, args);

/**
 * A made volume (create, clone, from snapshot) after the crash: available with its data whole, or in
 * error and deletable; then, if it was not available, the retry makes it whole.
 */
export async function settleNewVolume(client: RawClient, s: Scene, pattern: number | null, retry: Op): Promise<void> {
  const made = await findVolume(client, (v) => v.name === s.name);
  let volume = made;
  if (made && made.status !== 'available') {
    expect.soft(made.status, 'an interrupted create settles as available or error').toBe('error');
    await call(client, 'volume.delete', { id: made.id });
    volume = undefined;
  }
  if (volume && pattern !== null) {
    expect.soft(await readsPattern(s.share, volume, pattern), 'a volume recovered as available holds all its data').toBe(true);
  }
  volume ??= await send<VolumeRecord>(client, retry);
  expect(volume.status).toBe('available');
  if (pattern !== null) expect(await readsPattern(s.share, volume, pattern), 'the retried volume holds all its data').toBe(true);
}

/**
 * Registers each case twice, the command stalled before it runs and after it ran, against one agent
 * with a qcow2 and a raw (sparse) NFS backend. Every other run kills the agent alone, the rest kill it
 * with its children, so each step of each operation sees both.
 */
export function crashSuite(title: string, cases: Case[]): void {
  let shim: CrashShim;
  let proc: AgentProcess;
  const shareOf = (backend: Backend): string => join(proc.dir, `share-${backend}`);

  beforeAll(async () => {
    shim = await createCrashShim(['qemu-img', 'truncate']);
    proc = await startAgentProcess({
      pathPrefix: [shim.dir],
      backends: (dir) => BACKENDS.map((b) => ({ name: b, driver: 'nfs', shares: [join(dir, `share-${b}`)], format: b, sparse: true })),
    });
  });
  afterAll(async () => {
    await proc?.dispose();
    await shim?.dispose();
  });

  async function setUp(client: RawClient, c: Case, index: number): Promise<Scene> {
    const share = shareOf(c.backend);
    let vol = await call<VolumeRecord>(client, 'volume.create', { backend: c.backend, size: 1, name: `crash-source-${index}` });
    const snaps: SnapshotRecord[] = [];
    for (let i = 0; i <= c.snapshots; i++) {
      await writePattern(share, vol, patternOf(i));
      if (i === c.snapshots) break;
      snaps.push(await call<SnapshotRecord>(client, 'snapshot.create', { volumeId: vol.id, name: `s${i}` }));
      vol = await call<VolumeRecord>(client, 'volume.get', { id: vol.id });
    }
    return { backend: c.backend, share, vol, snaps, name: `crash-new-${index}` };
  }

  /** What is there before a case: a case answers only for the records and files it made. */
  async function taken(client: RawClient): Promise<{ ids: Set<string>; files: Set<string> }> {
    const { volumes, snapshots } = await listAll(client);
    const files = (await Promise.all(BACKENDS.map((b) => readdir(shareOf(b))))).flat();
    return { ids: new Set([...volumes, ...snapshots].map((r) => r.id)), files: new Set(files) };
  }

  /**
   * `startingUp`: the new agent may be probing its shares right now (a probe file lives for a moment);
   * one left by the killed agent is still there at the last audit.
   */
  async function expectConsistent(client: RawClient, before: Set<string>, when: string, startingUp = false): Promise<void> {
    const { volumes, snapshots } = await listAll(client);
    for (const backend of BACKENDS) {
      const vols = volumes.filter((v) => v.backend === backend);
      const audit = await auditNfsShare(shareOf(backend), vols, snapshots.filter((s) => vols.some((v) => v.id === s.volumeId)));
      audit.leftovers = audit.leftovers.filter((f) => !before.has(f) && !(startingUp && f.startsWith('.kindling-probe-')));
      expect.soft(audit, `${backend} share ${when}`).toEqual({ transient: [], broken: [], leftovers: [] });
    }
  }

  /** Deletes what the case made: each delete must succeed, whatever state the crash left it in. */
  async function deleteNew(client: RawClient, before: Set<string>): Promise<void> {
    const { volumes, snapshots } = await listAll(client);
    for (const snap of [...snapshots].reverse()) if (!before.has(snap.id)) await call(client, 'snapshot.delete', { id: snap.id });
    for (const vol of volumes) if (!before.has(vol.id)) await call(client, 'volume.delete', { id: vol.id });
  }

  describe.each(['before', 'after'] as const)(`${title}: a crash %s the command`, (at) => {
    for (const [index, c] of cases.entries()) {
      const alone = (index % 2 === 0) === (at === 'before');
      it(`${c.name}, ${alone ? 'agent killed alone' : 'agent killed with its children'}`, async () => {
        let client = await RawClient.connect(proc.url);
        const before = await taken(client);
        const scene = await setUp(client, c, index);
        const armed = await shim.arm({ ...c.rule, at });
        void client.call(...c.op(scene));
        const stall = await armed.reached();
        if (at === 'after') expect(stall.exitCode, `the real ${stall.argv.join(' ')} succeeded`).toBe(0);
        if (alone) await proc.kill();
        else await proc.killGroup();
        const outlived = alone && (await shim.alive(stall));
        await shim.release();
        client.close();

        proc = await proc.restart();
        client = await RawClient.connect(proc.url);
        try {
          await expectConsistent(client, before.files, 'after the restart', true);
          await c.settle(client, scene);
          await expectConsistent(client, before.files, 'after the retry');
          await deleteNew(client, before.ids);
          await expectConsistent(client, before.files, 'after deleting what the case made');
          expect.soft(outlived, `the stalled ${stall.argv.join(' ')} outlived the agent`).toBe(false);
        } finally {
          await deleteNew(client, before.ids).catch(() => undefined);
          client.close();
        }
      });
    }
  });
}
