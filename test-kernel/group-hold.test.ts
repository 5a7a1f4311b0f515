// Issue 21 item 3 on a real kernel: a group snapshot of two LVM volumes in use, while a writer in the guest
// keeps them in lockstep (counter n written to the first, then to the second, each with O_DIRECT and O_DSYNC).
// Thin volumes in use are refused, changing nothing (lvm2 cannot snapshot a suspended thin volume).
// Any instant of that writer leaves the first member equal to the second or one ahead; a group cut at one
// instant restores such a pair. Cut one after the other, the first member would run ahead by however many
// writes lvm2's steps take. The writer runs on after the cut: the hold ended.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent, Volume } from '@kindling/sdk';
import { guestProbe } from './support/data.js';
import { guestExec, guestSh } from './support/kernel.js';

const WRITER = `
a=$1; b=$2; tag=$3; i=0
while [ ! -e /tmp/$tag.stop ]; do
  i=$((i + 1))
  for d in "$a" "$b"; do
    printf '%-511s\\n' "$i" | dd of="$d" bs=512 count=1 oflag=direct,dsync conv=notrunc status=none || exit 1
  done
  echo "$i" > /tmp/$tag.count
done
`;

/** What a scenario made, newest first: detached, without its snapshots, deleted (after a failure too). */
async function removeAll(made: Volume[]): Promise<void> {
  for (const vol of made.reverse()) {
    await vol.detach().catch(() => undefined);
    for (const snap of [...vol.snapshots]) await snap.delete().catch(() => undefined);
    await vol.delete().catch(() => undefined);
  }
}

/** The counter at the start of a device (what the writer last wrote there). */
async function counterOf(device: string): Promise<number> {
  return Number((await guestSh(`dd if=${device} bs=512 count=1 iflag=direct status=none`)).trim());
}

async function writes(tag: string): Promise<number> {
  return Number((await guestSh(`cat /tmp/${tag}.count 2>/dev/null || echo 0`)).trim());
}

async function until(what: string, ok: () => Promise<boolean>, ms = 120_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) if (await ok()) return;
  throw new Error(`timed out waiting for ${what}`);
}

describe('a group snapshot on lvm-thick under a lockstep writer (real kernel)', () => {
  const backendName = 'lvm-thick';
  let agent: Agent;
  const made: Volume[] = [];
  const tag = `lockstep-${backendName}`;

  beforeAll(async () => {
    agent = await guestProbe(backendName).connect();
    const r = await guestExec(['/bin/sh', '-c', `cat > /tmp/${tag}.sh`], { stdin: Buffer.from(WRITER) });
    expect(r.code).toBe(0);
  });

  afterAll(async () => {
    await guestSh(`touch /tmp/${tag}.stop`).catch(() => undefined);
    await removeAll(made);
    await agent?.close();
  });

  it('restores the pair in order, with both members in use, and the writer goes on after the cut', async () => {
    const backend = await agent.backend(backendName);
    const [first, second] = [await backend.createVolume({ size: 1, name: `${tag}-data` }), await backend.createVolume({ size: 1, name: `${tag}-wal` })];
    made.push(first, second);
    const [a, b] = [(await first.attach()).path!, (await second.attach()).path!];
    await guestSh(`setsid bash /tmp/${tag}.sh ${a} ${b} ${tag} </dev/null >/tmp/${tag}.log 2>&1 &`);
    await until('the writer to start', async () => (await writes(tag)) >= 5);

    const group = await agent.createGroupSnapshot([first, second], { name: tag });
    expect(group.status).toBe('available');
    const atCut = await writes(tag);
    await until('the writer to go on after the cut', async () => (await writes(tag)) >= atCut + 5, 60_000);
    await guestSh(`touch /tmp/${tag}.stop`);

    const restored = await group.createVolumes();
    made.push(...restored);
    const [ra, rb] = [(await restored[0]!.attach()).path!, (await restored[1]!.attach()).path!];
    const [ca, cb] = [await counterOf(ra), await counterOf(rb)];
    expect(cb).toBeGreaterThanOrEqual(5);
    expect([cb, cb + 1]).toContain(ca);
    await group.delete();
  }, 600_000);
});

describe('a group snapshot of thin volumes in use (real kernel)', () => {
  it('is refused, leaving no snapshot, and the pool works on', async () => {
    const agent = await guestProbe('lvm-thin').connect();
    const backend = await agent.backend('lvm-thin');
    const [first, second] = [await backend.createVolume({ size: 1 }), await backend.createVolume({ size: 1 })];
    try {
      await first.attach();
      await expect(agent.createGroupSnapshot([first, second])).rejects.toThrow(/cannot hold writes to thin volumes/);
      await first.refresh();
      expect(first.snapshots.size + second.snapshots.size).toBe(0);
      // The pool is whole: a snapshot of the (detached) second volume still works.
      await (await second.createSnapshot()).delete();
    } finally {
      await first.detach();
      await first.delete();
      await second.delete();
      await agent.close();
    }
  }, 300_000);
});

// lvm2 suspends an origin with its filesystem frozen (device-mapper's lockfs) to snapshot it: a mounted
// filesystem is flushed and its journal closed first, so the snapshot is clean, not only crash-consistent.
// Writeback is put off for the test, so only the freeze can have written the file's data.
describe('a snapshot of a mounted LVM volume (real kernel)', () => {
  let agent: Agent;
  const made: Volume[] = [];
  const mnt = '/mnt/kindling-clean';

  beforeAll(async () => {
    agent = await guestProbe('lvm-thin').connect();
  });

  afterAll(async () => {
    await guestSh(`umount ${mnt} 2>/dev/null; umount ${mnt}-restored 2>/dev/null; sysctl -qw vm.dirty_expire_centisecs=3000`).catch(() => undefined);
    await removeAll(made);
    await agent?.close();
  });

  it('holds what was written without a sync, and mounts with no journal replay', async () => {
    const backend = await agent.backend('lvm-thin');
    const vol = await backend.createVolume({ size: 1, name: 'clean-source' });
    made.push(vol);
    const device = (await vol.attach()).path!;
    await guestSh(`mkfs.ext4 -q ${device} && mkdir -p ${mnt} ${mnt}-restored && mount -o commit=600 ${device} ${mnt}`);
    await guestSh(`sync && sysctl -qw vm.dirty_expire_centisecs=60000 && printf 'written before the cut' > ${mnt}/data`);
    const snap = await vol.createSnapshot();
    await guestSh(`printf 'written after the cut' > ${mnt}/data`);

    const restored = await snap.createVolume();
    made.push(restored);
    const copy = (await restored.attach()).path!;
    await guestSh(`mount -o ro,noload ${copy} ${mnt}-restored`);
    expect(await guestSh(`cat ${mnt}-restored/data`)).toBe('written before the cut');
    await guestSh(`umount ${mnt}-restored && umount ${mnt}`);
  }, 600_000);
});
