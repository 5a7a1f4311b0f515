import { execFileSync } from 'node:child_process';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendError, type VolumeRecord } from '@kindling/protocol';
import { parseConfig } from '../config.js';
import { openServices, type Services } from '../services.js';
import { tempServices, type TempServices } from '../testing/temp-services.js';

// A failure that changed nothing leaves the record as it was; one that may have changed storage is
// settled against storage, never parked in error while storage holds the volume whole. Real files and
// qemu-img in a temp dir; `chattr +i` makes storage refuse for real (a host without it fails these).
let t: TempServices;
let dir: string;
let s: Services;

beforeEach(async () => {
  t = await tempServices('settle');
  ({ dir, services: s } = t);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await t.dispose();
});

const fileOf = (v: VolumeRecord) => join(dir, 'share', String(v.location.activeFile));

async function whileImmutable<T>(path: string, fn: () => Promise<T>): Promise<T> {
  execFileSync('chattr', ['+i', path]);
  try {
    return await fn();
  } finally {
    execFileSync('chattr', ['-i', path]);
  }
}

describe('a failed extend', () => {
  it('that changed nothing on storage (the driver says so) leaves the volume available as it was', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    vi.spyOn(s.backends.get('nfs'), 'extendVolume').mockRejectedValueOnce(
      new BackendError('lvextend: Insufficient free space', { storageChanged: false }),
    );
    await expect(s.volumes.extend(volume.id, 2)).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect(s.volumes.get(volume.id)).toEqual(volume);
  });

  it('that may have changed storage is settled against it: available at the size storage holds', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const err = await whileImmutable(fileOf(volume), () => s.volumes.extend(volume.id, 2)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BACKEND_ERROR', message: expect.stringMatching(/^qemu-img failed/) });
    expect(s.volumes.get(volume.id)).toMatchObject({ status: 'available', size: 1, error: null });
    // Healthy: it attaches and extends as any other.
    expect(await s.volumes.extend(volume.id, 2)).toMatchObject({ status: 'available', size: 2 });
  });

  it('of a connected volume settles in-use', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.connections.connect(volume.id, { host: 'compute-1' });
    await whileImmutable(fileOf(volume), () => s.volumes.extend(volume.id, 2)).catch(() => undefined);
    expect(s.volumes.get(volume.id)).toMatchObject({ status: 'in-use', size: 1, error: null });
  });
});

describe('volume.resetState', () => {
  const parked = async (status: 'error' | 'error_deleting') => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const error = { code: 'BACKEND_ERROR' as const, message: 'something failed' };
    await s.index.putVolume({ ...volume, status, error });
    return volume;
  };

  it('settles a volume in error that storage holds whole: available, the error cleared', async () => {
    const volume = await parked('error');
    expect(await s.volumes.resetState(volume.id)).toMatchObject({ id: volume.id, status: 'available', size: 1, error: null });
    expect(s.volumes.get(volume.id).status).toBe('available');
  });

  it('refuses (CONFLICT) when storage does not hold the volume whole, and changes nothing', async () => {
    const volume = await parked('error');
    const before = s.volumes.get(volume.id);
    await rm(fileOf(volume));
    await expect(s.volumes.resetState(volume.id)).rejects.toMatchObject({ code: 'CONFLICT', details: { id: volume.id, onStorage: null } });
    expect(s.volumes.get(volume.id)).toEqual(before);
  });

  it('forgets a volume whose delete got through on storage; refuses one whose delete may have cleared part of it', async () => {
    const gone = await parked('error_deleting');
    await rm(fileOf(gone));
    expect(await s.volumes.resetState(gone.id)).toMatchObject({ id: gone.id, status: 'deleted' });
    expect(() => s.volumes.get(gone.id)).toThrow(/no volume/);

    const half = await parked('error_deleting');
    await expect(s.volumes.resetState(half.id)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/delete it again/) });
    expect(s.volumes.get(half.id).status).toBe('error_deleting');
  });

  it('refuses a volume an operation is running on', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.index.putVolume({ ...volume, status: 'creating' });
    await expect(s.volumes.resetState(volume.id)).rejects.toMatchObject({ code: 'CONFLICT' });
  });
});

describe('a backend not ready at start', () => {
  it('keeps its interrupted records as they were, and settles them once it starts', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.index.putVolume({ ...volume, status: 'creating' });
    await t.services.close();
    // The share is elsewhere for now: a file stands where the folder should be, so the backend cannot start.
    const share = join(dir, 'share');
    await rename(share, `${share}.away`);
    await writeFile(share, '');
    const config = parseConfig({ dataDir: join(dir, 'data'), backends: [{ name: 'nfs', driver: 'nfs', shares: [share] }] }, dir);
    s = t.services = await openServices(config);
    expect(s.volumes.get(volume.id).status).toBe('creating');
    expect(s.recovery.resolved).toEqual([]);

    await rm(share);
    await rename(`${share}.away`, share);
    for (let i = 0; i < 1000 && !(await s.backends.readiness())[0]!.ready; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.volumes.get(volume.id)).toMatchObject({ status: 'available', error: null });
  });
});
