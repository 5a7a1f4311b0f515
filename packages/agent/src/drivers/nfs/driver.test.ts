import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendError, ConflictError, UnsupportedError } from '@kindling/protocol';
import type { NfsBackendConfig } from '../../config.js';
import { run } from '../../exec/run.js';
import { nfsConfig, newVolume, newSnapshot, TEST_HOST, TEST_OWNER } from '../../testing/nfs-driver.js';
import { infoTempFile, partFile } from './names.js';
import type { Driver, SnapshotRef, VolumeRef } from '../driver.js';
import { NfsDriver } from './driver.js';

// Real qemu-img and qemu-io on a temporary folder share: the chain logic is checked on real images.

const GiB = 1024 ** 3;

interface QemuInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
}

async function qemuInfo(path: string): Promise<QemuInfo> {
  return JSON.parse((await run(['qemu-img', 'info', '--output=json', path])).stdout) as QemuInfo;
}

/** The chain as [file, format, backing file] rows, top first. */
async function chainOf(path: string): Promise<[string, string, string | null][]> {
  const out = JSON.parse((await run(['qemu-img', 'info', '--backing-chain', '--output=json', path])).stdout) as QemuInfo[];
  return out.map((i) => [i.filename.split('/').at(-1)!, i.format, i['backing-filename'] ?? null]);
}

const write = (path: string, format: string, pattern: string, offset = '0') =>
  run(['qemu-io', '-f', format, '-c', `write -P ${pattern} ${offset} 64k`, path]);

/** Resolves when the 64 KiB at `offset` all hold `pattern`; qemu-io exits 1 otherwise. */
const reads = async (path: string, format: string, pattern: string, offset = '0'): Promise<boolean> =>
  run(['qemu-io', '-f', format, '-c', `read -P ${pattern} ${offset} 64k`, path]).then(
    () => true,
    () => false,
  );

describe('NfsDriver on a local folder share', () => {
  let share: string;

  const makeDriver = (over: Partial<NfsBackendConfig> = {}) =>
    new NfsDriver(nfsConfig(share, { format: 'qcow2', ...over }), { run, hostId: TEST_HOST });

  const activePath = (volume: VolumeRef): string => join(share, String(volume.location.activeFile));
  const readInfoFile = async (volume: VolumeRef): Promise<unknown> =>
    JSON.parse(await readFile(join(share, `volume-${volume.id}.info`), 'utf8'));

  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-nfs-'));
  });
  afterEach(async () => {
    await rm(share, { recursive: true, force: true });
  });

  describe('volumes', () => {
    it('creates a qcow2 volume file of the asked size', async () => {
      const driver = makeDriver();
      const vol = await newVolume(driver, 2);
      expect(vol.location).toEqual({ share, format: 'qcow2', activeFile: `volume-${vol.id}` });
      const info = await qemuInfo(join(share, `volume-${vol.id}`));
      expect(info.format).toBe('qcow2');
      expect(info['virtual-size']).toBe(2 * GiB);
    });

    it('creates a sparse raw file that takes no space', async () => {
      const driver = makeDriver({ format: 'raw' });
      const vol = await newVolume(driver);
      const path = join(share, `volume-${vol.id}`);
      const info = await qemuInfo(path);
      expect(info.format).toBe('raw');
      expect(info['virtual-size']).toBe(GiB);
      expect((await stat(path)).blocks * 512).toBeLessThan(1024 * 1024);
    });

    it('creates a fully allocated raw file when not sparse', async () => {
      const driver = makeDriver({ format: 'raw', sparse: false });
      const vol = await newVolume(driver);
      const st = await stat(join(share, `volume-${vol.id}`));
      expect(st.size).toBe(GiB);
      expect(st.blocks * 512).toBeGreaterThanOrEqual(GiB);
      expect(driver.capabilities().thin).toBe(false);
    });

    it('refuses a volume larger than the share can hold, creating nothing', async () => {
      const driver = makeDriver();
      const ref: VolumeRef = { id: randomUUID(), size: 10_000_000, location: {} };
      const err = await driver.createVolume(ref).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as ConflictError).details.requestedGb).toBe(10_000_000);
      expect((err as ConflictError).details.freeGb).toBeGreaterThan(0);
      expect((err as ConflictError).details.freeGb).toBeLessThan(10_000_000);
      expect(await readdir(share)).toEqual([]);
    });

    it('extends qcow2 and raw volumes with qemu-img resize', async () => {
      for (const format of ['qcow2', 'raw'] as const) {
        const driver = makeDriver({ format });
        const vol = await newVolume(driver);
        await write(join(share, `volume-${vol.id}`), format, '0x11');
        const location = await driver.extendVolume(vol, 3);
        expect(location).toEqual({ share, format, activeFile: `volume-${vol.id}` });
        const path = join(share, `volume-${vol.id}`);
        expect((await qemuInfo(path))['virtual-size']).toBe(3 * GiB);
        expect(await reads(path, format, '0x11')).toBe(true);
      }
    });

    it('deletes the volume, its overlays and record; what interrupted operations left goes with the next scan', async () => {
      const driver = makeDriver();
      const keep = await newVolume(driver);
      const vol = await newVolume(driver);
      await newSnapshot(driver, vol);
      await newSnapshot(driver, vol);
      const temps = [partFile(vol.id, TEST_OWNER), infoTempFile(vol.id, TEST_OWNER)];
      for (const name of temps) await writeFile(join(share, name), '');
      expect((await readdir(share)).filter((n) => n.includes(vol.id))).toHaveLength(6);
      await driver.deleteVolume(vol);
      expect((await readdir(share)).sort()).toEqual([`volume-${keep.id}`, ...temps].sort());
      const { leftovers } = await driver.scan();
      expect(leftovers.map((l) => l.where).sort()).toEqual(temps.map((n) => join(share, n)).sort());
      for (const leftover of leftovers) await driver.removeLeftover(leftover);
      expect(await readdir(share)).toEqual([`volume-${keep.id}`]);
      await driver.deleteVolume(vol);
      await driver.deleteVolume({ id: randomUUID(), size: 1, location: {} });
      expect(await readdir(share)).toEqual([`volume-${keep.id}`]);
    });
  });

  describe.each(['qcow2', 'raw'] as const)('the snapshot chain over a %s volume', (format) => {
    it('stacks overlays, records them as cinder does, and keeps each snapshot point in time', async () => {
      const driver = makeDriver({ format });
      const vol = await newVolume(driver);
      const base = `volume-${vol.id}`;
      await write(join(share, base), format, '0x11');
      const a = await newSnapshot(driver, vol);
      expect(a.location).toEqual({ share, file: `${base}.${a.id}` });
      expect(vol.location).toEqual({ share, format, activeFile: `${base}.${a.id}` });
      await write(activePath(vol), 'qcow2', '0x22');
      const b = await newSnapshot(driver, vol);
      await write(activePath(vol), 'qcow2', '0x33');

      expect(await readInfoFile(vol)).toEqual({ active: `${base}.${b.id}`, [a.id]: `${base}.${a.id}`, [b.id]: `${base}.${b.id}` });
      expect(await readFile(join(share, `${base}.info`), 'utf8')).toBe(
        JSON.stringify({ active: `${base}.${b.id}`, [a.id]: `${base}.${a.id}`, [b.id]: `${base}.${b.id}` }, [a.id, b.id, 'active'].sort(), 1),
      );
      expect(await chainOf(activePath(vol))).toEqual([
        [`${base}.${b.id}`, 'qcow2', `${base}.${a.id}`],
        [`${base}.${a.id}`, 'qcow2', base],
        [base, format, null],
      ]);
      expect(await reads(activePath(vol), 'qcow2', '0x33')).toBe(true);

      // Each snapshot's data, copied out into a new volume.
      const fromA: VolumeRef = { id: randomUUID(), size: 2, location: {} };
      fromA.location = await driver.createVolumeFromSnapshot(fromA, a, vol);
      expect(fromA.location).toEqual({ share, format, activeFile: `volume-${fromA.id}` });
      const fromAInfo = await qemuInfo(join(share, `volume-${fromA.id}`));
      expect([fromAInfo.format, fromAInfo['virtual-size'], fromAInfo['backing-filename']]).toEqual([format, 2 * GiB, undefined]);
      expect(await reads(join(share, `volume-${fromA.id}`), format, '0x11')).toBe(true);

      // Delete the middle snapshot: a's overlay is committed into the base, b's overlay re-pointed.
      const afterA = await driver.deleteSnapshot(a, vol);
      expect(afterA.volume).toEqual({ share, format, activeFile: `${base}.${b.id}` });
      expect(await readInfoFile(vol)).toEqual({ active: `${base}.${b.id}`, [b.id]: `${base}.${b.id}` });
      expect(await chainOf(activePath(vol))).toEqual([
        [`${base}.${b.id}`, 'qcow2', base],
        [base, format, null],
      ]);
      expect(await reads(activePath(vol), 'qcow2', '0x33')).toBe(true);
      const fromB: VolumeRef = { id: randomUUID(), size: 1, location: {} };
      fromB.location = await driver.createVolumeFromSnapshot(fromB, b, vol);
      expect(await reads(join(share, `volume-${fromB.id}`), format, '0x22')).toBe(true);

      // Delete the latest snapshot: the active overlay is committed down and the base is active again.
      const afterB = await driver.deleteSnapshot(b, vol);
      expect(afterB.volume).toEqual({ share, format, activeFile: base });
      expect(await readInfoFile(vol)).toEqual({ active: base });
      expect(await chainOf(join(share, base))).toEqual([[base, format, null]]);
      expect(await reads(join(share, base), format, '0x33')).toBe(true);
      expect((await readdir(share)).filter((n) => n.startsWith(`${base}.`))).toEqual([`${base}.info`]);

      // Deleting a snapshot no longer recorded changes nothing.
      expect((await driver.deleteSnapshot(b, vol)).volume).toEqual({ share, format, activeFile: base });
    });

    it('reverts to the latest snapshot, and refuses an older one', async () => {
      const driver = makeDriver({ format });
      const vol = await newVolume(driver);
      await write(join(share, `volume-${vol.id}`), format, '0x11');
      const a = await newSnapshot(driver, vol);
      await write(activePath(vol), 'qcow2', '0x22');
      const b = await newSnapshot(driver, vol);
      await write(activePath(vol), 'qcow2', '0x33');
      await write(activePath(vol), 'qcow2', '0x44', '1M');

      const err = await driver.revertToSnapshot(vol, a).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect(await reads(activePath(vol), 'qcow2', '0x33')).toBe(true);

      const location = await driver.revertToSnapshot(vol, b);
      expect(location).toEqual(vol.location);
      expect(await reads(activePath(vol), 'qcow2', '0x22')).toBe(true);
      expect(await reads(activePath(vol), 'qcow2', '0x00', '1M')).toBe(true);
      expect(await chainOf(activePath(vol))).toEqual([
        [`volume-${vol.id}.${b.id}`, 'qcow2', `volume-${vol.id}.${a.id}`],
        [`volume-${vol.id}.${a.id}`, 'qcow2', `volume-${vol.id}`],
        [`volume-${vol.id}`, format, null],
      ]);
      // The older snapshot is untouched and reachable again once b is gone.
      vol.location = (await driver.deleteSnapshot(b, vol)).volume;
      expect(vol.location.activeFile).toBe(`volume-${vol.id}.${a.id}`);
      expect(await reads(activePath(vol), 'qcow2', '0x22')).toBe(true);
      await driver.revertToSnapshot(vol, a);
      expect(await reads(activePath(vol), 'qcow2', '0x11')).toBe(true);
    });

    it('clones through a temporary snapshot that is gone afterwards', async () => {
      const driver = makeDriver({ format });
      const src = await newVolume(driver);
      await write(join(share, `volume-${src.id}`), format, '0x11');
      const a = await newSnapshot(driver, src);
      await write(activePath(src), 'qcow2', '0x22');
      const before = await readInfoFile(src);

      const clone: VolumeRef = { id: randomUUID(), size: 2, location: {} };
      clone.location = await driver.cloneVolume(clone, src);
      expect(clone.location).toEqual({ share, format, activeFile: `volume-${clone.id}` });
      const info = await qemuInfo(join(share, `volume-${clone.id}`));
      expect([info.format, info['virtual-size'], info['backing-filename']]).toEqual([format, 2 * GiB, undefined]);
      expect(await reads(join(share, `volume-${clone.id}`), format, '0x22')).toBe(true);

      expect(await readInfoFile(src)).toEqual(before);
      expect((await readdir(share)).filter((n) => n.includes('tmp-snap'))).toEqual([]);
      expect(await chainOf(activePath(src))).toEqual([
        [`volume-${src.id}.${a.id}`, 'qcow2', `volume-${src.id}`],
        [`volume-${src.id}`, format, null],
      ]);
      expect(await reads(activePath(src), 'qcow2', '0x22')).toBe(true);
    });

    it('extends the active overlay; snapshots taken before keep their size and data', async () => {
      const driver = makeDriver({ format });
      const vol = await newVolume(driver);
      await write(join(share, `volume-${vol.id}`), format, '0x11');
      const a = await newSnapshot(driver, vol);
      expect(await driver.extendVolume(vol, 2)).toEqual(vol.location);
      vol.size = 2;
      await write(activePath(vol), 'qcow2', '0x22', '1536M');
      expect((await qemuInfo(activePath(vol)))['virtual-size']).toBe(2 * GiB);

      const fromA: VolumeRef = { id: randomUUID(), size: 1, location: {} };
      fromA.location = await driver.createVolumeFromSnapshot(fromA, a, vol);
      expect((await qemuInfo(join(share, `volume-${fromA.id}`)))['virtual-size']).toBe(GiB);

      await driver.deleteSnapshot(a, vol);
      const path = join(share, `volume-${vol.id}`);
      expect((await qemuInfo(path))['virtual-size']).toBe(2 * GiB);
      expect(await reads(path, format, '0x11')).toBe(true);
      expect(await reads(path, format, '0x22', '1536M')).toBe(true);
    });
  });

  describe('attach and connections', () => {
    it("gives the active file's path and cinder's nfs connection info", async () => {
      const driver = makeDriver({ format: 'raw', mountOptions: 'vers=4.2' });
      const vol = await newVolume(driver);
      const local = await driver.attach(vol);
      const path = join(share, `volume-${vol.id}`);
      expect(local).toEqual({
        path,
        connectionInfo: {
          driverVolumeType: 'nfs',
          data: { export: share, name: `volume-${vol.id}`, options: 'vers=4.2', format: 'raw', path },
        },
      });

      const snap = await newSnapshot(driver, vol);
      const remote = await driver.connect(vol);
      expect(remote).toEqual({
        path: null,
        connectionInfo: {
          driverVolumeType: 'nfs',
          data: { export: share, name: `volume-${vol.id}.${snap.id}`, options: 'vers=4.2', format: 'qcow2' },
        },
      });
      expect(() => driver.validateConnector()).not.toThrow();

      await driver.extendVolume(vol, 2);
      const conn = { id: 'c', backend: 'nfs', volumeId: vol.id, connectorInfo: {}, ...remote, attached: true, createdAt: '' };
      const asService: Driver = driver;
      expect(await asService.connectionSize(vol, conn)).toBe(2 * GiB);
    });

    it('reports options null without mount options', async () => {
      const driver = makeDriver();
      const vol = await newVolume(driver);
      expect((await driver.connect(vol)).connectionInfo.data.options).toBeNull();
    });
  });

  describe('without snapshot support', () => {
    it('says so in capabilities and refuses snapshot calls with UNSUPPORTED', async () => {
      const driver = makeDriver({ snapshotSupport: false });
      expect(driver.capabilities()).toMatchObject({
        snapshot: false,
        createFromSnapshot: false,
        revertToSnapshot: false,
        clone: true,
      });
      const vol = await newVolume(driver);
      const snap: SnapshotRef = { id: randomUUID(), volumeId: vol.id, volumeSize: 1, location: {} };
      for (const call of [
        () => driver.createSnapshot(snap, vol),
        () => driver.createVolumeFromSnapshot({ id: randomUUID(), size: 1, location: {} }, snap, vol),
        () => driver.revertToSnapshot(vol, snap),
      ]) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UnsupportedError);
        expect((err as UnsupportedError).details).toEqual({ feature: 'snapshot' });
      }
      expect(await readdir(share)).toEqual([`volume-${vol.id}`]);
    });

    it('clones by copying the volume file directly', async () => {
      const driver = makeDriver({ snapshotSupport: false });
      const src = await newVolume(driver);
      await write(join(share, `volume-${src.id}`), 'qcow2', '0x11');
      const clone: VolumeRef = { id: randomUUID(), size: 1, location: {} };
      await driver.cloneVolume(clone, src);
      expect(await reads(join(share, `volume-${clone.id}`), 'qcow2', '0x11')).toBe(true);
      expect((await readdir(share)).sort()).toEqual([`volume-${clone.id}`, `volume-${src.id}`].sort());
    });
  });

  describe('scan, stats and readiness', () => {
    it('finds the volumes and snapshots on the share', async () => {
      const driver = makeDriver({ format: 'raw' });
      const plain = await newVolume(driver, 2);
      const vol = await newVolume(driver);
      const a = await newSnapshot(driver, vol);
      const b = await newSnapshot(driver, vol);
      await driver.extendVolume(vol, 3);
      await writeFile(join(share, 'unrelated.txt'), 'x');

      // A fresh driver, as after an agent restart.
      const found = await makeDriver({ format: 'raw' }).scan();
      const byId = (x: { id: string }, y: { id: string }) => x.id.localeCompare(y.id);
      expect([...found.volumes].sort(byId)).toEqual(
        [
          { id: plain.id, size: 2, location: { share, format: 'raw', activeFile: `volume-${plain.id}` } },
          { id: vol.id, size: 3, location: { share, format: 'raw', activeFile: `volume-${vol.id}.${b.id}` } },
        ].sort(byId),
      );
      expect([...found.snapshots].sort(byId)).toEqual(
        [
          { id: a.id, volumeId: vol.id, location: { share, file: `volume-${vol.id}.${a.id}` } },
          { id: b.id, volumeId: vol.id, location: { share, file: `volume-${vol.id}.${b.id}` } },
        ].sort(byId),
      );
    });

    it('reports capacity, provisioned size and provisioning type', async () => {
      const driver = makeDriver();
      await newVolume(driver, 1);
      const vol = await newVolume(driver, 2);
      const fs = await statfs(share);
      const stats = await driver.stats(false);
      expect(stats).toMatchObject({
        vendorName: 'Open Source',
        driverVersion: '1.0',
        storageProtocol: 'nfs',
        provisionedCapacityGb: 3,
        thinProvisioningSupport: true,
        thickProvisioningSupport: false,
        maxOverSubscriptionRatio: 1,
        reservedPercentage: 0,
      });
      expect(stats.totalCapacityGb).toBe(Math.round(((fs.blocks * fs.bsize) / GiB) * 100) / 100);
      expect(stats.freeCapacityGb).toBeGreaterThan(0);
      expect(stats.freeCapacityGb).toBeLessThanOrEqual(stats.totalCapacityGb);

      await driver.deleteVolume(vol);
      expect((await driver.stats(false)).provisionedCapacityGb).toBe(1);
      // A volume made behind the driver's back shows after a refresh.
      await run(['qemu-img', 'create', '-f', 'qcow2', join(share, `volume-${randomUUID()}`), '4G']);
      expect((await driver.stats(false)).provisionedCapacityGb).toBe(1);
      expect((await driver.stats(true)).provisionedCapacityGb).toBe(5);
    });

    it('reads no volume at start: its provisioned count is the first scan after it (the check after ready), not a read of its own', async () => {
      const driver = makeDriver();
      await driver.start();
      // Written after the start: only a read of storage after it sees this volume.
      await run(['qemu-img', 'create', '-f', 'qcow2', join(share, `volume-${randomUUID()}`), '3G']);
      expect((await driver.scan()).volumes).toHaveLength(1);
      expect((await driver.stats(false)).provisionedCapacityGb).toBe(3);
    });

    it('creates a missing local share on start and is ready once it is writable', async () => {
      const missing = join(share, 'sub', 'share');
      const driver = new NfsDriver(nfsConfig(missing, { mountPointBase: join(share, 'mnt') }), { run, hostId: TEST_HOST });
      const before = await driver.readiness();
      expect(before.ready).toBe(false);
      expect(before.reason).toContain(`share ${missing} is not writable`);
      await driver.start();
      expect((await stat(missing)).isDirectory()).toBe(true);
      expect(await driver.readiness()).toEqual({ ready: true });
      expect(await readdir(missing)).toEqual([]);
    });

    it('fails start when a local share is a file', async () => {
      const file = join(share, 'not-a-folder');
      await writeFile(file, '');
      const driver = new NfsDriver(nfsConfig(file, { mountPointBase: join(share, 'mnt') }), { run, hostId: TEST_HOST });
      await expect(driver.start()).rejects.toThrow(`share ${file} is not a folder`);
    });
  });

  it('surfaces a failed qemu-img command as a BackendError', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    // A valid header over a truncated image: it passes the checks, and qemu-img fails on it.
    const path = join(share, `volume-${vol.id}`);
    await writeFile(path, (await readFile(path)).subarray(0, 1024));
    const err = await driver.extendVolume(vol, 2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).details.command).toEqual(expect.arrayContaining(['qemu-img', 'resize']));
  });
});
