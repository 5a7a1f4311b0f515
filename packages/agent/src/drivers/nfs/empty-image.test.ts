import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NfsBackendConfig } from '../../config.js';
import { run, type Runner } from '../../exec/run.js';
import { nfsConfig, newVolume } from '../../testing/nfs-driver.js';
import { NfsDriver } from './driver.js';

// A new volume's file is what the command cinder runs would leave, made without a process where the
// bytes are known (issue 20): real qemu-img makes the files compared against.

describe('empty NFS volumes', () => {
  let share: string;
  let bare: string;
  let commands: string[][];

  const counting: Runner = (argv, options) => {
    commands.push([...argv]);
    return run(argv, options);
  };
  const makeDriver = (over: Partial<NfsBackendConfig>) => new NfsDriver(nfsConfig(share, over), { run: counting, hostId: 'test-host' });
  /** What `qemu-img create` itself leaves for `format` and `size`. */
  const byQemuImg = async (format: string, size: string): Promise<string> => {
    const path = join(bare, `${format}-${size}`);
    await run(['qemu-img', 'create', '-q', '-f', format, path, size]);
    return path;
  };

  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-nfs-'));
    bare = await mkdtemp(join(tmpdir(), 'kindling-bare-'));
    commands = [];
  });
  afterEach(async () => {
    await rm(share, { recursive: true, force: true });
    await rm(bare, { recursive: true, force: true });
  });

  it('qcow2: runs qemu-img once per size, and every volume holds the bytes qemu-img create writes', async () => {
    const driver = makeDriver({ format: 'qcow2' });
    const vols = [await newVolume(driver, 2), await newVolume(driver, 2), await newVolume(driver, 1), await newVolume(driver, 2)];
    expect(commands.filter((argv) => argv.includes('create')).length).toBe(2);
    const expected = { 2: await readFile(await byQemuImg('qcow2', '2G')), 1: await readFile(await byQemuImg('qcow2', '1G')) };
    for (const vol of vols) {
      const bytes = await readFile(join(share, `volume-${vol.id}`));
      expect(bytes.equals(expected[vol.size as 1 | 2])).toBe(true);
    }
  });

  it('raw, sparse: runs no command, and leaves the file qemu-img create -f raw leaves', async () => {
    const driver = makeDriver({ format: 'raw' });
    const vol = await newVolume(driver, 3);
    expect(commands.filter((argv) => !argv.includes('--version'))).toEqual([]);
    const [mine, theirs] = await Promise.all([stat(join(share, `volume-${vol.id}`)), stat(await byQemuImg('raw', '3G'))]);
    expect(mine.size).toBe(theirs.size);
    expect(mine.blocks).toBe(theirs.blocks);
  });
});
