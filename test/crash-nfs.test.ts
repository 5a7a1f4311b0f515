import { expect } from 'vitest';
import type { VolumeRecord } from '@kindling/protocol';
import { activeFile, readsPattern } from '@kindling/agent/testing';
import { AB, BACKENDS, crashSuite, current, findVolume, settleNewVolume, type Case, type Op, type Scene } from './support/crash-nfs.js';

// Crash injection at every step of the NFS operations that make a volume (issue 9): create, clone
// (temporary snapshot, copy, grow, temporary snapshot delete) and volume from snapshot (copy, grow),
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
for (const backend of BACKENDS) {
  const op = (s: Scene): Op => ['volume.clone', { id: s.vol.id, size: 2, name: s.name }];
  for (const [step, args] of [
    ['temporary snapshot', ['create', '-b']],
    ['copy', ['convert']],
    ['grow', ['resize']],
    ['temporary snapshot delete', ['commit']],
  ] as const) {
    cases.push({
      name: `${backend} clone, ${step} (qemu-img ${args.join(' ')})`,
      backend,
      snapshots: 0,
      rule: { command: 'qemu-img', args: [...args] },
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
  for (const [step, args] of [
    ['copy', ['convert']],
    ['grow', ['resize']],
  ] as const) {
    cases.push({
      name: `${backend} volume from snapshot, ${step} (qemu-img ${args.join(' ')})`,
      backend,
      snapshots: 1,
      rule: { command: 'qemu-img', args: [...args] },
      op,
      settle: (c, s) => settleNewVolume(c, s, AB, op(s)),
    });
  }
}

crashSuite('NFS volume-making operations', cases);
