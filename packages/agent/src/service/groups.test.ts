import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendError, type GroupSnapshotRecord } from '@kindling/protocol';
import { parseConfig } from '../config.js';
import { openServices, type Services } from '../services.js';
import { tempServices, type TempServices } from '../testing/temp-services.js';

// Group snapshots on real NFS-driver storage in a temp dir: real LevelDB, real qcow2 overlays.
let t: TempServices;
let s: Services;

beforeEach(async () => {
  t = await tempServices('groups');
  s = t.services;
});
afterEach(async () => {
  vi.restoreAllMocks();
  await t.dispose();
});

const twoVolumes = async () => [await s.volumes.create({ backend: 'nfs', size: 1 }), await s.volumes.create({ backend: 'nfs', size: 1 })];
const snapshotIds = () => [...s.index.allSnapshots()].map((snap) => snap.id);

describe('group snapshots', () => {
  it('cuts one snapshot per member, each a normal available snapshot of its volume, and keeps the group', async () => {
    const [a, b] = await twoVolumes();
    const group = await s.groups.create({ volumeIds: [a!.id, b!.id], name: 'db' });
    expect(group).toMatchObject({ name: 'db', status: 'available', volumeIds: [a!.id, b!.id] });
    expect(group.snapshotIds.map((id) => s.snapshots.get(id))).toMatchObject([
      { volumeId: a!.id, status: 'available', name: 'db' },
      { volumeId: b!.id, status: 'available', name: 'db' },
    ]);
    expect(s.groups.get(group.id)).toEqual(group);
    expect(s.groups.list().map((g) => g.id)).toEqual([group.id]);
  });

  it('refuses a member in use, and takes no snapshot of the others', async () => {
    const [a, b] = await twoVolumes();
    await s.connections.attach(b!.id);
    await expect(s.groups.create({ volumeIds: [a!.id, b!.id] })).rejects.toMatchObject({ code: 'CONFLICT', details: { id: b!.id } });
    expect(snapshotIds()).toEqual([]);
    expect(s.groups.list()).toEqual([]);
  });

  describe('members in use on a backend that holds writes', () => {
    /** The NFS driver given a write hold (as the LVM driver has) that says when it holds and releases. */
    const holding = (expired: boolean) => {
      const driver = s.backends.get('nfs');
      const events: string[] = [];
      vi.spyOn(driver, 'capabilities').mockReturnValue({ ...driver.capabilities(), snapshotInUse: true });
      const real = driver.createSnapshot.bind(driver);
      vi.spyOn(driver, 'createSnapshot').mockImplementation(async (snap, volume) => {
        events.push(`cut ${volume.id}`);
        return real(snap, volume);
      });
      driver.holdWrites = async (volumes) => {
        events.push(`hold ${volumes.map((v) => v.id).join(' ')}`);
        return { expired, release: async () => void events.push('release') };
      };
      return events;
    };

    it('holds them from before the first cut to after the last', async () => {
      const [a, b] = await twoVolumes();
      await s.connections.attach(b!.id);
      const events = holding(false);
      const group = await s.groups.create({ volumeIds: [a!.id, b!.id] });
      expect(group.status).toBe('available');
      expect(events).toEqual([`hold ${b!.id}`, `cut ${a!.id}`, `cut ${b!.id}`, 'release']);
    });

    it('a hold that ran out before the last cut fails the group, leaving no snapshot and no group', async () => {
      const [a, b] = await twoVolumes();
      await s.connections.attach(a!.id);
      const events = holding(true);
      await expect(s.groups.create({ volumeIds: [a!.id, b!.id] })).rejects.toMatchObject({ code: 'CONFLICT', message: /could not be held/ });
      expect(events.at(-1)).toBe('release');
      expect(snapshotIds()).toEqual([]);
      expect(s.groups.list()).toEqual([]);
    });
  });

  it('refuses a member that does not exist, and changes nothing', async () => {
    const [a] = await twoVolumes();
    await expect(s.groups.create({ volumeIds: [a!.id, '00000000-0000-4000-8000-000000000000'] })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(snapshotIds()).toEqual([]);
  });

  it('a member that fails to snapshot removes the members already made, leaving no snapshot and no group', async () => {
    const [a, b] = await twoVolumes();
    const driver = s.backends.get('nfs');
    const real = driver.createSnapshot.bind(driver);
    vi.spyOn(driver, 'createSnapshot').mockImplementation(async (snap, volume) => {
      if (volume.id === b!.id) throw new BackendError('qemu-img failed');
      return real(snap, volume);
    });
    await expect(s.groups.create({ volumeIds: [a!.id, b!.id] })).rejects.toMatchObject({ code: 'BACKEND_ERROR' });
    expect(snapshotIds()).toEqual([]);
    expect(s.groups.list()).toEqual([]);
    expect((await driver.scan()).snapshots).toEqual([]);
  });

  it('delete removes every member snapshot, then the group', async () => {
    const [a, b] = await twoVolumes();
    const group = await s.groups.create({ volumeIds: [a!.id, b!.id] });
    expect(await s.groups.delete(group.id)).toMatchObject({ id: group.id, status: 'deleted' });
    expect(snapshotIds()).toEqual([]);
    expect(() => s.groups.get(group.id)).toThrow(/no group snapshot/);
    // The members' volumes can go now: nothing of the group holds them.
    await s.volumes.delete(a!.id);
  });

  it('a group a kill cut short after its first member loses that member at the next start', async () => {
    const [a, b] = await twoVolumes();
    const made = await s.snapshots.create({ volumeId: a!.id });
    const at = new Date().toISOString();
    const partial: GroupSnapshotRecord = {
      id: '11111111-1111-4111-8111-111111111111',
      name: null,
      status: 'creating',
      volumeIds: [a!.id, b!.id],
      snapshotIds: [made.id, '22222222-2222-4222-8222-222222222222'],
      createdAt: at,
      updatedAt: at,
      error: null,
    };
    await s.index.putGroup(partial);
    await s.close();
    const config = parseConfig({ dataDir: join(t.dir, 'data'), backends: [{ name: 'nfs', driver: 'nfs', shares: [join(t.dir, 'share')] }] }, t.dir);
    t.services = s = await openServices(config);
    await s.recoveredAfterReady;
    expect(s.groups.list()).toEqual([]);
    expect(snapshotIds()).toEqual([]);
    expect((await s.backends.get('nfs').scan()).snapshots).toEqual([]);
  });
});
