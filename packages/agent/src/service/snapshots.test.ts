import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendError, ConflictError, type VolumeRecord } from '@kindling/protocol';
import type { Services } from '../services.js';
import { tempServices, type TempServices } from '../testing/temp-services.js';

// Snapshot operations and revert on real NFS-driver storage in a temp dir.
let t: TempServices;
let s: Services;

beforeEach(async () => {
  t = await tempServices('snapshots');
  s = t.services;
});
afterEach(async () => {
  vi.restoreAllMocks();
  await t.dispose();
});

/** The volume records pushed to sessions from now on. */
const pushed = (id: string): VolumeRecord[] => {
  const seen: VolumeRecord[] = [];
  s.events.subscribe((e) => {
    if (e.event === 'volume' && (e.resource as VolumeRecord).id === id) seen.push(e.resource as VolumeRecord);
  });
  return seen;
};

describe('revert', () => {
  it('is reverting, naming its snapshot in the index, while the driver runs, then available again', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snapshot = await s.snapshots.create({ volumeId: volume.id });
    const seen = pushed(volume.id);
    const driver = s.backends.get('nfs');
    const revert = driver.revertToSnapshot.bind(driver);
    let stored: VolumeRecord | undefined;
    vi.spyOn(driver, 'revertToSnapshot').mockImplementation(async (v, snap) => {
      stored = s.index.getVolume(volume.id);
      return revert(v, snap);
    });

    const reverted = await s.snapshots.revert(volume.id, snapshot.id);
    expect(stored).toMatchObject({ status: 'reverting', revertingTo: snapshot.id });
    expect(reverted.status).toBe('available');
    expect(reverted.revertingTo).toBeUndefined();
    expect(s.volumes.get(volume.id)).toEqual(reverted);
    expect(seen.map((v) => [v.status, v.revertingTo])).toEqual([
      ['reverting', snapshot.id],
      ['available', undefined],
    ]);
  });

  it('a revert that fails leaves the volume in error with the failure kept', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snapshot = await s.snapshots.create({ volumeId: volume.id });
    vi.spyOn(s.backends.get('nfs'), 'revertToSnapshot').mockRejectedValue(new BackendError('qemu-img failed'));
    await expect(s.snapshots.revert(volume.id, snapshot.id)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    const failed = s.volumes.get(volume.id);
    expect(failed).toMatchObject({ status: 'error', error: { message: 'qemu-img failed', details: { volumeId: volume.id } } });
    expect(failed.revertingTo).toBeUndefined();
  });

  it('a revert that failed after its snapshot\'s storage went (an LVM merge) leaves that snapshot in error, not available', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snapshot = await s.snapshots.create({ volumeId: volume.id });
    const kept = await s.snapshots.create({ volumeId: volume.id });
    const driver = s.backends.get('nfs');
    const merged = new BackendError('the merge did not finish', { storageChanged: true, snapshotPresent: false });
    vi.spyOn(driver, 'revertToSnapshot').mockRejectedValueOnce(merged);
    await expect(s.snapshots.revert(volume.id, snapshot.id)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect(s.snapshots.get(snapshot.id)).toMatchObject({ status: 'error', error: { message: 'the merge did not finish' } });
    expect(s.snapshots.get(kept.id).status).toBe('available');

    // One whose snapshot is still there keeps it available.
    await s.volumes.resetState(volume.id);
    vi.spyOn(driver, 'revertToSnapshot').mockRejectedValueOnce(new BackendError('lvconvert failed', { snapshotPresent: true }));
    await expect(s.snapshots.revert(volume.id, kept.id)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect(s.snapshots.get(kept.id).status).toBe('available');
  });

  it('a revert the driver refuses before changing anything puts the volume back as it was', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snapshot = await s.snapshots.create({ volumeId: volume.id });
    const before = s.volumes.get(volume.id);
    vi.spyOn(s.backends.get('nfs'), 'revertToSnapshot').mockRejectedValue(new ConflictError('not the latest snapshot'));
    await expect(s.snapshots.revert(volume.id, snapshot.id)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(s.volumes.get(volume.id)).toEqual(before);
  });
});

describe('snapshots in error are never stuck', () => {
  it('a snapshot whose create failed, and one whose delete failed, are deleted; then their volume is', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const driver = s.backends.get('nfs');
    vi.spyOn(driver, 'createSnapshot').mockRejectedValueOnce(new BackendError('qemu-img create failed'));
    await expect(s.snapshots.create({ volumeId: volume.id })).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    const [failed] = s.index.snapshotsOf(volume.id);
    expect(failed).toMatchObject({ status: 'error' });

    const made = await s.snapshots.create({ volumeId: volume.id });
    vi.spyOn(driver, 'deleteSnapshot').mockRejectedValueOnce(new BackendError('qemu-img commit failed'));
    await expect(s.snapshots.delete(made.id)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect(s.snapshots.get(made.id).status).toBe('error_deleting');

    await s.snapshots.delete(failed!.id);
    await s.snapshots.delete(made.id);
    expect(await s.snapshots.list({ volumeId: volume.id })).toEqual([]);
    await s.volumes.delete(volume.id);
    expect((await s.volumes.list({ backend: 'nfs' })).volumes).toEqual([]);
  });
});

describe('snapshot.list by name', () => {
  it('answers only the snapshots of that name, of any volume, for a caller checking a name without listing everything', async () => {
    const a = await s.volumes.create({ backend: 'nfs', size: 1 });
    const b = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.snapshots.create({ volumeId: a.id, name: 'other' });
    const named = await s.snapshots.create({ volumeId: b.id, name: 'wanted' });
    expect(await s.snapshots.list({ name: 'wanted', limit: 10 })).toEqual({ snapshots: [named], nextCursor: null });
    expect(await s.snapshots.list({ name: 'none', limit: 10 })).toEqual({ snapshots: [], nextCursor: null });
  });
});
