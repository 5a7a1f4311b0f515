import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Children } from '../../exec/children.js';
import { createRunner, type Runner } from '../../exec/run.js';
import { nfsConfig, TEST_HOST } from '../../testing/nfs-driver.js';
import { NfsDriver } from './driver.js';

/**
 * The start check of qemu-img (`qemu-img --version`) against the real runner, with the agent's PATH
 * reduced to a folder of this test's own: `qemu-img` there is a script that counts its runs, beside
 * the `sh` and `grep` the runner's reaper needs.
 */
describe('NFS start check of qemu-img', () => {
  let tmp: string;
  let bin: string;
  let runs: string;
  let savedPath: string | undefined;
  const run: Runner = createRunner(new Children());
  const start = () => new NfsDriver(nfsConfig(join(tmp, 'share')), { run, hostId: TEST_HOST, dataDir: join(tmp, 'data') }).start();
  const count = () => readFile(runs, 'utf8').then((t) => t.length, () => 0);
  const qemuImg = async (body: string) => {
    await rm(join(bin, 'qemu-img'), { force: true });
    await writeFile(join(bin, 'qemu-img'), `#!/bin/sh\nprintf x >> ${runs}\n${body}\n`);
    await chmod(join(bin, 'qemu-img'), 0o755);
  };

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'kindling-nfs-check-'));
    bin = join(tmp, 'bin');
    runs = join(tmp, 'runs');
    await mkdir(bin);
    await mkdir(join(tmp, 'share'));
    for (const tool of ['sh', 'grep']) await symlink(`/bin/${tool}`, join(bin, tool));
    await qemuImg('exec /usr/bin/qemu-img "$@"');
    savedPath = process.env.PATH;
    process.env.PATH = bin;
  });
  afterEach(async () => {
    process.env.PATH = savedPath;
    await rm(tmp, { recursive: true, force: true });
  });

  it('runs qemu-img once for the same program: a later start runs no command', async () => {
    await start();
    await start();
    await start();
    expect(await count()).toBe(1);
  });

  it('runs it again once the program changed, and refuses the start if it no longer works', async () => {
    await start();
    await qemuImg('echo "qemu-img: cannot load libraries" >&2; exit 1');
    await expect(start()).rejects.toThrow(/qemu-img failed \(exit 1\): qemu-img: cannot load libraries/);
    await expect(start()).rejects.toThrow(/cannot load libraries/);
    expect(await count()).toBe(3);
  });

  it('starts the backend where the check cannot be remembered, running it each time', async () => {
    const dataDir = join(tmp, 'not-a-folder');
    await writeFile(dataDir, '');
    const driver = () => new NfsDriver(nfsConfig(join(tmp, 'share')), { run, hostId: TEST_HOST, dataDir });
    await driver().start();
    await driver().start();
    expect(await count()).toBe(2);
  });

  it('refuses the start once qemu-img is gone, though it passed before', async () => {
    await start();
    await rm(join(bin, 'qemu-img'));
    await expect(start()).rejects.toThrow(/qemu-img failed \(exit 127\)/);
  });
});
