import { expect } from 'vitest';
import type { VolumeRecord } from '@kindling/protocol';
import { activeFile, readsPattern } from '@kindling/agent/testing';
import { AB, BACKENDS, crashSuite, current, findVolume, settleNewVolume, type Case, type Op, type Scene } from './support/crash-nfs.js';

// Crash injection at every step of the NFS operations that make a volume (issue 9): create, clone
// (temporary snapshot, empty copy, copy, temporary snapshot delete) and volume from snapshot (empty
// copy, copy),
// on a qcow2 and a raw backend. The chain operations are in crash-nfs-chain.test.ts.

const cases: Case[] = [];
for (const backend of BACKENDS) {
  const rule = backend === 'qcow2' ? { command: 'qemu-img', args: ['create'] } : { command: 'truncate' };
  const op = (s: Scene): Op => ['volume.create', { backend, size: 1, name: s.name }];
  cases.push({
    name: `${backend} create (${rule.command} ${rule.args?.join(' ') ?? ''})`,
    backend,
    snapshots: 0,
    rule,
    op,
    settle: (c, s) => settleNewVolume(c, s, null, op(s)),
  });
}
/** The call that makes a copy's empty target (the copy is then written into it). */
const emptyCopy = (backend: string, creates: number): Case['rule'] =>
  backend === 'qcow2' ? { command: 'qemu-img', args: ['create'], nth: creates } : { command: 'truncate' };

for (const backend of BACKENDS) {
  const op = (s: Scene): Op => ['volume.clone', { id: s.vol.id, size: 2, name: s.name }];
  const steps: [string, Case['rule']][] = [
    ['temporary snapshot', { command: 'qemu-img', args: ['create', '-b'] }],
    // The temporary snapshot's overlay was the first qemu-img create.
    ['empty copy', emptyCopy(backend, 2)],
    ['copy', { command: 'qemu-img', args: ['convert'] }],
    ['temporary snapshot delete', { command: 'qemu-img', args: ['commit'] }],
  ];
  for (const [step, rule] of steps) {
    cases.push({
      name: `${backend} clone, ${step} (${rule.command} ${rule.args?.join(' ') ?? ''})`,
      backend,
      snapshots: 0,
      rule,
      op,
      settle: async (c, s) => {
        await settleNewVolume(c, s, current(s), op(s));
        // The source keeps its data and its own file as the active one: no temporary snapshot stays on it.
        const source = (await findVolume(c, (v) => v.id === s.vol.id)) as VolumeRecord;
        expect(source.status).toBe('available');
        expect(await readsPattern(s.share, source, current(s))).toBe(true);
        expect((await activeFile(s.share, source)).path.endsWith(`/volume-${source.id}`), 'the source has no temporary overlay').toBe(true);
      },
    });
  }
}
for (const backend of BACKENDS) {
  const op = (s: Scene): Op => ['snapshot.createVolume', { id: s.snaps[0]!.id, size: 2, name: s.name }];
  const steps: [string, Case['rule']][] = [
    ['empty copy', emptyCopy(backend, 1)],
    ['copy', { command: 'qemu-img', args: ['convert'] }],
  ];
  for (const [step, rule] of steps) {
    cases.push({
      name: `${backend} volume from snapshot, ${step} (${rule.command} ${rule.args?.join(' ') ?? ''})`,
      backend,
      snapshots: 1,
      rule,
      op,
      settle: (c, s) => settleNewVolume(c, s, AB, op(s)),
    });
  }
}

crashSuite('NFS volume-making operations', cases);
