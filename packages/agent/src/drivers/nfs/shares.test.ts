import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendError } from '@kindling/protocol';
import type { NfsBackendConfig } from '../../config.js';
import type { Runner } from '../../exec/run.js';
import { nfsConfig, TEST_HOST } from '../../testing/nfs-driver.js';
import { NfsDriver } from './driver.js';
import { parseMountPoints, probesDuring, probeWritable } from './shares.js';

// No NFS server or nfs kernel module here: mounting is checked by the exact argv it would run.
const recorder = (fail?: (argv: readonly string[]) => Error | null) => {
  const calls: string[][] = [];
  const run: Runner = async (argv) => {
    calls.push([...argv]);
    const err = fail?.(argv);
    if (err) throw err;
    return { stdout: '', stderr: '' };
  };
  return { calls, run };
};

// md5('server:/export'), as os-brick names the mount point.
const HASH = 'e6e980ea11fb380ad110d97cbda6eafc';

describe('NFS share mounting', () => {
  let tmp: string;
  let mountInfo: string;
  let base: string;
  const config = (over: Partial<NfsBackendConfig> = {}): NfsBackendConfig =>
    nfsConfig('server:/export', { mountPointBase: base, ...over });

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'kindling-nfs-mount-'));
    mountInfo = join(tmp, 'mountinfo');
    base = join(tmp, 'mnt');
    await writeFile(mountInfo, '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n');
  });
  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('mounts host:/path under mountPointBase/<md5 of the share> with the configured options', async () => {
    const { calls, run } = recorder();
    const driver = new NfsDriver(config({ mountOptions: 'vers=4.1,nosuid' }), { run, mountInfoPath: mountInfo, hostId: TEST_HOST });
    await driver.start();
    expect(calls).toEqual([
      ['qemu-img', '--version'],
      ['mount', '-t', 'nfs', '-o', 'vers=4.1,nosuid', 'server:/export', join(base, HASH)],
    ]);
    expect((await stat(join(base, HASH))).isDirectory()).toBe(true);
  });

  it('passes no -o without mount options', async () => {
    const { calls, run } = recorder();
    await new NfsDriver(config(), { run, mountInfoPath: mountInfo, hostId: TEST_HOST }).start();
    expect(calls[1]).toEqual(['mount', '-t', 'nfs', 'server:/export', join(base, HASH)]);
  });

  it('does not mount a share already mounted', async () => {
    await writeFile(mountInfo, `40 22 0:50 / ${join(base, HASH)} rw,relatime shared:30 - nfs4 server:/export rw\n`, {
      flag: 'a',
    });
    const { calls, run } = recorder();
    await new NfsDriver(config(), { run, mountInfoPath: mountInfo, hostId: TEST_HOST }).start();
    expect(calls).toEqual([['qemu-img', '--version']]);
  });

  it('knows a share is mounted when mountPointBase is reached through a symlink', async () => {
    const real = join(tmp, 'real-mnt');
    await mkdir(join(real, HASH), { recursive: true });
    await symlink(real, base);
    await writeFile(mountInfo, `40 22 0:50 / ${join(real, HASH)} rw,relatime shared:30 - nfs4 server:/export rw\n`, {
      flag: 'a',
    });
    const { calls, run } = recorder();
    await new NfsDriver(config(), { run, mountInfoPath: mountInfo, hostId: TEST_HOST }).start();
    expect(calls).toEqual([['qemu-img', '--version']]);
  });

  it('fails start with an error naming the share when mount fails', async () => {
    const { run } = recorder((argv) =>
      argv[0] === 'mount'
        ? new BackendError('mount failed (exit 32): access denied by server', {
            command: [...argv],
            exitCode: 32,
            stderrTail: 'mount.nfs: access denied by server',
          })
        : null,
    );
    const err = await new NfsDriver(config(), { run, mountInfoPath: mountInfo, hostId: TEST_HOST }).start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).message).toContain('cannot mount NFS share server:/export');
    expect((err as BackendError).message).toContain('access denied by server');
    expect((err as BackendError).details).toMatchObject({ exitCode: 32 });
  });

  it('is not ready while the share is not mounted, and says which share', async () => {
    const { run } = recorder();
    const readiness = await new NfsDriver(config(), { run, mountInfoPath: mountInfo, hostId: TEST_HOST }).readiness();
    expect(readiness.ready).toBe(false);
    expect(readiness.reason).toBe(`share server:/export is not mounted at ${join(base, HASH)}`);
  });

  it('refuses to create a volume when no share is mounted', async () => {
    const { calls, run } = recorder();
    const driver = new NfsDriver(config(), { run, mountInfoPath: mountInfo, hostId: TEST_HOST });
    const ref = { id: '8b0c2f6e-8c2a-4a4e-9f57-3f0c9d7a1e21', size: 1, location: {} };
    await expect(driver.createVolume(ref)).rejects.toThrow('no share of backend nfs is mounted');
    expect(calls).toEqual([]);
  });
});

describe('parseMountPoints', () => {
  it('reads field 5 and undoes the octal escapes', () => {
    const text = [
      '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '40 22 0:50 / /var/mnt/with\\040space rw shared:30 - nfs4 srv:/x rw',
      '',
    ].join('\n');
    expect([...parseMountPoints(text)]).toEqual(['/', '/var/mnt/with space']);
  });
});

describe('probe files and the storage check', () => {
  it("keeps a probe that ran while a scan was listing as this process's, even after the probe ended", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kindling-probe-'));
    try {
      const scan = probesDuring();
      // Ends between the scan's listing and its look at the name: not a dead agent's leftover.
      const during = await probeWritable(dir, '0123456789ab');
      scan.close();
      const after = await probeWritable(dir, '0123456789ab');
      expect({ during: scan.ours(during), after: scan.ours(after) }).toEqual({ during: true, after: false });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
