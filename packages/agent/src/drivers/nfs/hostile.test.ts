import { randomUUID } from 'node:crypto';
import { link, mkdtemp, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError } from '@kindling/protocol';
import type { NfsBackendConfig } from '../../config.js';
import { run } from '../../exec/run.js';
import { nfsConfig, newVolume, TEST_HOST } from '../../testing/nfs-driver.js';
import type { SnapshotRef, VolumeRef } from '../driver.js';
import { NfsDriver } from './driver.js';

// Shares are hostile input (issue 10): whoever can write the export must not get the agent to read,
// copy or resize a file of the host through a symlink, a hard link or a backing file reference.

const MiB = 1024 * 1024;

const reads = (path: string, format: string, pattern: string, offset = '0'): Promise<boolean> =>
  run(['qemu-io', '-f', format, '-c', `read -P ${pattern} ${offset} 64k`, path]).then(
    () => true,
    () => false,
  );

describe('NFS driver on a hostile share', () => {
  let share: string;
  let host: string;
  /** A host-only file the share's writers must never get at: 1 MiB of 0x5a. */
  let secret: string;

  const makeDriver = (format: 'qcow2' | 'raw' = 'qcow2', over: Partial<NfsBackendConfig> = {}) =>
    new NfsDriver(nfsConfig(share, { format, ...over }), { run, hostId: TEST_HOST });
  const snapshot = async (driver: NfsDriver, volume: VolumeRef): Promise<SnapshotRef> => {
    const ref: SnapshotRef = { id: randomUUID(), volumeId: volume.id, volumeSize: volume.size, location: {} };
    volume.location = (await driver.createSnapshot(ref, volume)).volume;
    return ref;
  };
  const path = (file: unknown) => join(share, String(file));
  const newRef = (): VolumeRef => ({ id: randomUUID(), size: 1, location: {} });

  /** Each call is refused for `reason`, and neither the share nor the host file changed. */
  async function refusedEverywhere(driver: NfsDriver, vol: VolumeRef, reason: string, calls: (() => Promise<unknown>)[]) {
    const before = (await readdir(share)).sort();
    const secretBefore = await stat(secret);
    for (const call of calls) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as ConflictError).details).toMatchObject({ refused: reason });
      expect((err as ConflictError).message).toMatch(/^refusing /);
    }
    expect((await readdir(share)).sort()).toEqual(before);
    expect((await stat(secret)).mtimeMs).toBe(secretBefore.mtimeMs);
    const scan = await makeDriver(vol.location.format === 'raw' ? 'raw' : 'qcow2').scan();
    expect(scan.volumes.map((v) => v.id)).not.toContain(vol.id);
    expect(scan.strays).toContainEqual({ where: path(`volume-${vol.id}`), reason: expect.stringMatching(/^refusing /) });
  }

  const everyCall = (driver: NfsDriver, vol: VolumeRef) => [
    () => driver.cloneVolume(newRef(), vol),
    () => driver.extendVolume(vol, 2),
    () => driver.attach(vol),
    () => driver.connect(vol),
    () => driver.connectionSize(vol),
    () => driver.createSnapshot({ id: randomUUID(), volumeId: vol.id, volumeSize: 1, location: {} }, vol),
  ];

  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-hostile-'));
    host = await mkdtemp(join(tmpdir(), 'kindling-host-'));
    secret = join(host, 'secret');
    await writeFile(secret, Buffer.alloc(MiB, 0x5a));
  });
  afterEach(async () => {
    await rm(share, { recursive: true, force: true });
    await rm(host, { recursive: true, force: true });
  });

  it('does not clone, extend, attach or snapshot a volume file replaced by a symlink to a host file', async () => {
    for (const format of ['qcow2', 'raw'] as const) {
      const driver = makeDriver(format);
      const vol = await newVolume(driver);
      await rm(path(`volume-${vol.id}`));
      await symlink(secret, path(`volume-${vol.id}`));
      await refusedEverywhere(driver, vol, 'symlink', everyCall(driver, vol));
      expect((await stat(secret)).size).toBe(MiB);
      // Deleting it removes the link, never what it points at.
      await driver.deleteVolume(vol);
      expect((await readFile(secret)).equals(Buffer.alloc(MiB, 0x5a))).toBe(true);
    }
  });

  it('never writes a new volume through a name planted on the share', async () => {
    const driver = makeDriver('raw');
    const vol = newRef();
    await symlink(secret, path(`volume-${vol.id}`));
    await expect(driver.createVolume(vol)).rejects.toBeInstanceOf(ConflictError);
    await expect(driver.cloneVolume(vol, await newVolume(driver))).rejects.toBeInstanceOf(ConflictError);
    expect((await stat(secret)).size).toBe(MiB);
    expect((await readdir(share)).filter((n) => n.includes('tmp-snap') || n.includes('.info'))).toEqual([]);
    // The temporary name is not the id's alone: a link planted at the name it once was is never used.
    const other = newRef();
    await symlink(secret, path(`volume-${other.id}.part`));
    await driver.createVolume(other);
    expect((await stat(secret)).size).toBe(MiB);
  });

  it('refuses a hard-linked volume file', async () => {
    const driver = makeDriver('raw');
    const vol = await newVolume(driver);
    await rm(path(`volume-${vol.id}`));
    await link(secret, path(`volume-${vol.id}`));
    await refusedEverywhere(driver, vol, 'hard-linked', everyCall(driver, vol));
  });

  it('refuses a snapshot record that is a symlink', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    await snapshot(driver, vol);
    await rm(path(`volume-${vol.id}.info`));
    await symlink(secret, path(`volume-${vol.id}.info`));
    const err = await driver.attach(vol).catch((e: unknown) => e);
    expect((err as ConflictError).details).toMatchObject({ refused: 'symlink', path: path(`volume-${vol.id}.info`) });
    expect((await makeDriver().scan()).volumes).toEqual([]);
  });

  it('copies a raw base a guest wrote a qcow2 header into as the bytes it is, never its backing file', async () => {
    const driver = makeDriver('raw');
    const vol = await newVolume(driver);
    const header = join(host, 'header.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, header, '1G']);
    const file = await open(path(`volume-${vol.id}`), 'r+');
    await file.write(await readFile(header), 0, undefined, 0);
    await file.close();
    // A backend switched to qcow2 never reads that guest-written header as the volume's image.
    const scan = await makeDriver('qcow2').scan();
    expect(scan.volumes).toEqual([]);
    expect(scan.strays).toEqual([{ where: path(`volume-${vol.id}`), reason: expect.stringContaining('the base image has a backing file') }]);

    const clone = newRef();
    await driver.cloneVolume(clone, vol);
    const snap = await snapshot(driver, vol);
    const fromSnap = newRef();
    await driver.createVolumeFromSnapshot(fromSnap, snap, vol);
    for (const copy of [clone, fromSnap]) {
      await run(['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'raw', path(`volume-${vol.id}`), path(`volume-${copy.id}`)]);
      expect(await reads(path(`volume-${copy.id}`), 'raw', '0x5a', '64k')).toBe(false);
    }
    // Once it has an overlay, the overlay's header (written by the driver) says the base is raw.
    expect((await makeDriver('qcow2').scan()).volumes.find((v) => v.id === vol.id)?.location.format).toBe('raw');
  });

  it('refuses a qcow2 base with a backing file', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    await rm(path(`volume-${vol.id}`));
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', secret, path(`volume-${vol.id}`), '1G']);
    await refusedEverywhere(driver, vol, 'base-has-backing-file', everyCall(driver, vol));
  });

  it('refuses an overlay whose header was re-pointed at a host file', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    const snap = await snapshot(driver, vol);
    await run(['qemu-img', 'rebase', '-q', '-u', '-f', 'qcow2', '-F', 'raw', '-b', secret, path(vol.location.activeFile)]);
    const before = (await readdir(share)).sort();
    for (const call of [
      ...everyCall(driver, vol),
      () => driver.deleteSnapshot(snap, vol),
      () => driver.revertToSnapshot(vol, snap),
      () => driver.createVolumeFromSnapshot(newRef(), snap, vol),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect((err as ConflictError).details).toMatchObject({ refused: 'unexpected-backing-file', backingFile: secret });
    }
    expect((await readdir(share)).sort()).toEqual(before);
  });
});
