import { expect } from 'vitest';
import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import type { RawClient } from './support/raw-client.js';
import { readsPattern, snapshotReadsPattern } from '@kindling/agent/testing';
import { call, listAll } from './support/storage.js';
import { AB, BACKENDS, crashSuite, current, findVolume, patternOf, type Case, type Scene } from './support/crash-nfs.js';

// Crash injection at every step of the NFS chain operations (issue 9): snapshot create, snapshot
// delete (commit; commit and rebase for a middle snapshot, the rebase's after-point being the crash
// between the rebase and the `.info` rewrite), revert and extend. The volume-making ones are in
// crash-nfs.test.ts.

const volumeOf = async (c: RawClient, s: Scene): Promise<VolumeRecord> => (await findVolume(c, (v) => v.id === s.vol.id))!;

const cases: Case[] = [];
cases.push({
  name: 'qcow2 snapshot create (qemu-img create -b)',
  backend: 'qcow2',
  snapshots: 0,
  rule: { command: 'qemu-img', args: ['create', '-b'] },
  op: (s) => ['snapshot.create', { volumeId: s.vol.id, name: s.name }],
  settle: async (c, s) => {
    let snap = (await listAll(c)).snapshots.find((x) => x.name === s.name);
    if (snap && snap.status !== 'available') {
      expect.soft(snap.status, 'an interrupted snapshot settles as available or error').toBe('error');
      await call(c, 'snapshot.delete', { id: snap.id });
      snap = undefined;
    }
    snap ??= await call<SnapshotRecord>(c, 'snapshot.create', { volumeId: s.vol.id, name: s.name });
    expect(snap.status).toBe('available');
    expect(await readsPattern(s.share, await volumeOf(c, s), AB)).toBe(true);
    expect(await snapshotReadsPattern(s.share, s.vol.id, snap.id, AB)).toBe(true);
  },
});

/** The snapshot is gone or error_deleting (a retry removes it); the volume and every other snapshot read as before. */
async function settleSnapshotDelete(c: RawClient, s: Scene, gone: SnapshotRecord): Promise<void> {
  const left = (await listAll(c)).snapshots.find((x) => x.id === gone.id);
  if (left) {
    expect.soft(left.status, 'an interrupted snapshot delete settles as error_deleting').toBe('error_deleting');
    await call(c, 'snapshot.delete', { id: gone.id });
  }
  const vol = await volumeOf(c, s);
  expect(vol.status).toBe('available');
  expect(await readsPattern(s.share, vol, current(s)), 'the volume reads as before').toBe(true);
  for (const [i, snap] of s.snaps.entries()) {
    if (snap.id !== gone.id) expect(await snapshotReadsPattern(s.share, vol.id, snap.id, patternOf(i)), `snapshot s${i} reads as before`).toBe(true);
  }
}
for (const [which, steps] of [
  ['latest', ['commit']],
  ['middle', ['commit', 'rebase']],
] as const) {
  const target = (s: Scene): SnapshotRecord => (which === 'latest' ? s.snaps[1]! : s.snaps[0]!);
  for (const step of steps) {
    cases.push({
      name: `qcow2 delete of the ${which} snapshot (qemu-img ${step})`,
      backend: 'qcow2',
      snapshots: 2,
      rule: { command: 'qemu-img', args: [step] },
      op: (s) => ['snapshot.delete', { id: target(s).id }],
      settle: (c, s) => settleSnapshotDelete(c, s, target(s)),
    });
  }
}
cases.push({
  name: 'qcow2 revert (qemu-img create -b of the new overlay)',
  backend: 'qcow2',
  snapshots: 1,
  rule: { command: 'qemu-img', args: ['create', '-b'] },
  op: (s) => ['volume.revert', { id: s.vol.id, snapshotId: s.snaps[0]!.id }],
  settle: async (c, s) => {
    let vol = await volumeOf(c, s);
    // Recovery finishes a revert it finds under way (the `reverting` status): the revert was asked for.
    expect.soft(vol.status, 'recovery settles an interrupted revert').toBe('available');
    const reverted = await readsPattern(s.share, vol, AB);
    expect.soft(reverted, 'recovery finished the revert').toBe(true);
    if (!reverted) vol = await call<VolumeRecord>(c, 'volume.revert', { id: s.vol.id, snapshotId: s.snaps[0]!.id });
    expect(await readsPattern(s.share, vol, AB)).toBe(true);
    expect(await snapshotReadsPattern(s.share, vol.id, s.snaps[0]!.id, AB)).toBe(true);
  },
});
for (const backend of BACKENDS) {
  cases.push({
    name: `${backend} extend (qemu-img resize)`,
    backend,
    snapshots: 0,
    rule: { command: 'qemu-img', args: ['resize'] },
    op: (s) => ['volume.extend', { id: s.vol.id, size: 2 }],
    settle: async (c, s) => {
      let vol = await volumeOf(c, s);
      expect.soft(vol.status, 'an interrupted extend settles as available').toBe('available');
      if (vol.status === 'error' || vol.size < 2) vol = await call<VolumeRecord>(c, 'volume.extend', { id: s.vol.id, size: 2 });
      expect(vol.size).toBe(2);
      expect(await readsPattern(s.share, vol, AB)).toBe(true);
    },
  });
}

crashSuite('NFS chain operations', cases);
