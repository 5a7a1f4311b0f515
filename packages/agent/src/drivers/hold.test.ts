import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendError } from '@kindling/protocol';
import { descendantsOf } from '../testing/process-tree.js';
import { holdWritesOf } from './hold.js';
import { dmName } from './lvm/names.js';

const BUILT_HOLD = resolve(import.meta.dirname, '../../dist/drivers/hold.js');

/**
 * A stand-in `dmsetup` that logs each call (this host has no device-mapper; the real suspend and
 * resume run in the kernel lane's group snapshot scenario). A device named `bad` cannot be suspended.
 */
const standIn = (log: string): string => `#!/bin/bash
echo "$*" >> ${JSON.stringify(log)}
[ "$2" = bad ] && [ "$1" = suspend ] && { echo "device bad: No such device" >&2; exit 1; }
exit 0
`;

describe('holding writes to device-mapper devices', () => {
  let dir: string;
  let path: string | undefined;
  const logged = async (): Promise<string[]> => (await readFile(join(dir, 'calls'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-hold-'));
    await writeFile(join(dir, 'dmsetup'), standIn(join(dir, 'calls')));
    await chmod(join(dir, 'dmsetup'), 0o755);
    path = process.env.PATH;
    process.env.PATH = `${dir}:${path ?? ''}`;
  });
  afterEach(async () => {
    process.env.PATH = path;
    await rm(dir, { recursive: true, force: true });
  });

  it("names a device as lvm2 does: each dash of the VG's and the LV's name doubled", () => {
    expect(dmName('kindling-thick', 'volume-1a-2b')).toBe('kindling--thick-volume--1a--2b');
  });

  it('suspends every device, and resumes them all at release', async () => {
    const hold = await holdWritesOf('device-mapper', ['vg-a', 'vg-b'], 30_000);
    expect(await logged()).toEqual(['suspend vg-a', 'suspend vg-b']);
    await hold.release();
    expect(hold.expired).toBe(false);
    expect(await logged()).toEqual(['suspend vg-a', 'suspend vg-b', 'resume vg-a', 'resume vg-b']);
  });

  it('a device that cannot be suspended resumes only the ones that were (never one held by someone else), and fails', async () => {
    const err = await holdWritesOf('device-mapper', ['vg-a', 'bad', 'vg-c'], 30_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).message).toMatch(/could not hold writes to vg-a, bad, vg-c: device bad: No such device/);
    expect(await logged()).toEqual(['suspend vg-a', 'suspend bad', 'resume vg-a']);
  });

  it('ends by itself at its time limit, and says it expired', async () => {
    const hold = await holdWritesOf('device-mapper', ['vg-a'], 1000);
    for (let i = 0; i < 60 && !hold.expired; i++) await new Promise((r) => setTimeout(r, 100));
    expect(hold.expired).toBe(true);
    // A release after the hold ended waits for the holder's exit, its resume done.
    await hold.release();
    expect(await logged()).toEqual(['suspend vg-a', 'resume vg-a']);
  });

  it('says it expired when its holder was killed before the release', async () => {
    const hold = await holdWritesOf('device-mapper', ['vg-a'], 30_000);
    const holders = [];
    for (const pid of await descendantsOf(process.pid)) {
      if ((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').includes('kindling-hold')) holders.push(pid);
    }
    expect(holders).toHaveLength(1);
    process.kill(holders[0]!, 'SIGKILL');
    for (let i = 0; i < 60 && !hold.expired; i++) await new Promise((r) => setTimeout(r, 50));
    expect(hold.expired).toBe(true);
    await hold.release();
  });

  it('resumes the devices when the process holding them is killed with SIGKILL', async () => {
    const script = [
      `const { holdWritesOf } = await import(${JSON.stringify(pathToFileURL(BUILT_HOLD).href)});`,
      "await holdWritesOf('device-mapper', ['vg-a', 'vg-b'], 60000);",
      "console.log('held');",
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const owner = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(createInterface({ input: owner.stdout! }), 'line');
    owner.kill('SIGKILL');
    let calls: string[] = [];
    for (let i = 0; i < 100 && calls.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 50));
      calls = await logged();
    }
    expect(calls).toEqual(['suspend vg-a', 'suspend vg-b', 'resume vg-a', 'resume vg-b']);
  });
});
