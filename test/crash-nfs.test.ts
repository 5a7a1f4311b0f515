import { expect } from 'vitest';
import type { VolumeRecord } from '@kindling/protocol';
import { activeFile, readsPattern } from '@kindling/agent/testing';
import { AB, BACKENDS, crashSuite, current, findVolume, settleNewVolume, type Case, type Op, type Scene } from './support/crash-nfs.js';

// Crash injection at every command of the NFS operations that make a volume (issue 9): create, clone
// (temporary snapshot, empty copy, copy, temporary snapshot delete) and volume from snapshot (empty
// copy, copy),
// on a qcow2 and a raw backend. The chain operations are in crash-nfs-chain.test.ts.
// An empty file is made by a command only for qcow2, and only the first time an agent makes that
// size (empty-image.ts: qemu-img's image, then its bytes; the restarted agent of one case runs the
// next): each case's new qcow2 volume gets a size no case made before, its source is 1 GiB. An empty raw
// file is made with no command; a crash between its file-system steps is drivers/nfs/crash-fs.test.ts's.

const sizes = new WeakMap<Scene, number>();
let lastSize = 1;
/** The new volume's size in GiB: for qcow2 one the agent has made no empty image of yet. */
const sizeFor = (s: Scene): number => {
  if (s.backend !== 'qcow2') return 2;
  if (!sizes.has(s)) sizes.set(s, ++lastSize);
  return sizes.get(s)!;
};

const cases: Case[] = [];
{
  const rule = { command: 'qemu-img', args: ['create'] };
  const op = (s: Scene): Op => ['volume.create', { backend: 'qcow2', size: sizeFor(s), name: s.name }];
  cases.push({
    name: `qcow2 create (${rule.command} ${rule.args.join(' ')})`,
    backend: 'qcow2',
    snapshots: 0,
    rule,
    op,
    settle: (c, s) => settleNewVolume(c, s, null, op(s)),
  });
}
/** The call that makes a copy's empty target (the copy is then written into it); none for raw. */
const emptyCopy = (backend: string, creates: number): [string, Case['rule']][] =>
  backend === 'qcow2' ? [['empty copy', { command: 'qemu-img', args: ['create'], nth: creates }]] : [];

for (const backend of BACKENDS) {
  const op = (s: Scene): Op => ['volume.clone', { id: s.vol.id, size: sizeFor(s), name: s.name }];
  const steps: [string, Case['rule']][] = [
    ['temporary snapshot', { command: 'qemu-img', args: ['create', '-b'] }],
    // The temporary snapshot's overlay was the first qemu-img create.
    ...emptyCopy(backend, 2),
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
  const op = (s: Scene): Op => ['snapshot.createVolume', { id: s.snaps[0]!.id, size: sizeFor(s), name: s.name }];
  const steps: [string, Case['rule']][] = [
    ...emptyCopy(backend, 1),
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
