import { execFileSync } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendError, InvalidArgumentError, type VolumeRecord } from '@kindling/protocol';
import type { Services } from '../services.js';
import { tempServices, type TempServices } from '../testing/temp-services.js';

// Volume operations racing each other and refused by the driver, on real NFS-driver storage in a temp dir.
let t: TempServices;
let dir: string;
let s: Services;

beforeEach(async () => {
  t = await tempServices('volumes');
  ({ dir, services: s } = t);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await t.dispose();
});

const ids = async () => (await s.volumes.list({ backend: 'nfs' })).volumes.map((v) => v.id);
const statuses = (id: string): string[] => {
  const seen: string[] = [];
  s.events.subscribe((e) => {
    if (e.event === 'volume' && (e.resource as VolumeRecord).id === id) seen.push((e.resource as VolumeRecord).status);
  });
  return seen;
};

describe('races', () => {
  it('a clone queued behind an extend of its source is made at the extended size', async () => {
    const source = await s.volumes.create({ backend: 'nfs', size: 1 });
    const extended = s.volumes.extend(source.id, 2);
    const clone = s.volumes.clone({ id: source.id });
    expect(await extended).toMatchObject({ status: 'available', size: 2 });
    expect(await clone).toMatchObject({ status: 'available', size: 2, sourceVolId: source.id });
  });

  it('a clone asking for less than the source has once its extend lands is refused and leaves no record', async () => {
    const source = await s.volumes.create({ backend: 'nfs', size: 1 });
    const extended = s.volumes.extend(source.id, 2);
    const clone = s.volumes.clone({ id: source.id, size: 1 });
    await extended;
    await expect(clone).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { size: 1, sourceSize: 2 } });
    expect(await ids()).toEqual([source.id]);
  });
});

describe('driver refusals leave nothing behind', () => {
  it('a clone the driver refuses before copying (the source image is bigger than the record says) leaves no record', async () => {
    const source = await s.volumes.create({ backend: 'nfs', size: 1 });
    // Grown behind the agent's back: the driver's own check sees a 2 GiB image for a 1 GiB clone.
    execFileSync('qemu-img', ['resize', '-f', 'qcow2', join(dir, 'share', String(source.location.activeFile)), '2G']);

    await expect(s.volumes.clone({ id: source.id })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/1 GiB volume cannot hold a 2 GiB image/),
    });
    expect(await ids()).toEqual([source.id]);
    expect(s.volumes.get(source.id)).toEqual(source);
    // Nothing of a clone was left on the share.
    for (const file of await readdir(join(dir, 'share'))) expect(file.startsWith(`volume-${source.id}`)).toBe(true);
  });

  it('a create refused by a driver pre-check is forgotten, its draft announced as deleted', async () => {
    vi.spyOn(s.backends.get('nfs'), 'createVolume').mockRejectedValue(new InvalidArgumentError('too big for this backend'));
    const seen: string[] = [];
    s.events.subscribe((e) => seen.push((e.resource as VolumeRecord).status));
    await expect(s.volumes.create({ backend: 'nfs', size: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await ids()).toEqual([]);
    expect(seen).toEqual(['creating', 'deleted']);
  });

  it('an extend refused by a driver pre-check puts the volume back as it was', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    vi.spyOn(s.backends.get('nfs'), 'extendVolume').mockRejectedValue(new InvalidArgumentError('cannot shrink'));
    await expect(s.volumes.extend(volume.id, 2)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(s.volumes.get(volume.id)).toEqual(volume);
  });
});

describe('nothing is stuck for good', () => {
  it('a volume whose create failed (error) can be deleted', async () => {
    vi.spyOn(s.backends.get('nfs'), 'createVolume').mockRejectedValueOnce(new BackendError('qemu-img create failed'));
    await expect(s.volumes.create({ backend: 'nfs', size: 1 })).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    const [failed] = (await s.volumes.list({ backend: 'nfs' })).volumes;
    expect(failed).toMatchObject({ status: 'error', error: { message: 'qemu-img create failed' } });
    await s.volumes.delete(failed!.id);
    expect(await ids()).toEqual([]);
  });

  it('a volume whose delete failed (error_deleting) is deleted by a retry', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    vi.spyOn(s.backends.get('nfs'), 'deleteVolume').mockRejectedValueOnce(new BackendError('rm failed'));
    await expect(s.volumes.delete(volume.id)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect(s.volumes.get(volume.id).status).toBe('error_deleting');
    await s.volumes.delete(volume.id);
    expect(await ids()).toEqual([]);
    expect(await readdir(join(dir, 'share'))).toEqual([]);
  });

  it('a connected volume whose extend failed stays in error once disconnected, and can then be deleted', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const { connection } = await s.connections.connect(volume.id, { host: 'compute-1' });
    // Gone from storage: the resize fails, and storage cannot settle the record.
    await rm(join(dir, 'share', String(volume.location.activeFile)));
    const failure = await s.volumes.extend(volume.id, 2).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'NOT_FOUND' });
    const seen = statuses(volume.id);

    const { volume: after } = await s.connections.disconnect(connection.id);
    expect(after).toMatchObject({ status: 'error', error: { code: 'NOT_FOUND' } });
    expect(seen).toEqual(['error']);
    await s.volumes.delete(volume.id);
    expect(await ids()).toEqual([]);
  });
});

describe('copies of a volume in use (issue 18, finding 5)', () => {
  it('an NFS clone of a connected volume is refused with CONFLICT, as its snapshot is, and made once it is disconnected', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const { connection } = await s.connections.connect(volume.id, { host: 'compute-1' });
    // The connected host keeps writing the file the copy is read from: the clone would be torn.
    for (const copy of [() => s.volumes.clone({ id: volume.id }), () => s.snapshots.create({ volumeId: volume.id })]) {
      await expect(copy()).rejects.toMatchObject({ code: 'CONFLICT', details: { id: volume.id, status: 'in-use', feature: 'snapshotInUse' } });
    }
    expect(await ids()).toEqual([volume.id]);
    expect(s.volumes.get(volume.id).status).toBe('in-use');
    await s.connections.disconnect(connection.id);
    expect(await s.volumes.clone({ id: volume.id })).toMatchObject({ status: 'available', sourceVolId: volume.id });
  });
});
