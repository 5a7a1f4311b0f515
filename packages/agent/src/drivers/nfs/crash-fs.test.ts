import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../exec/run.js';
import { imageReadsPattern } from '../../testing/nfs-data.js';
import { nfsConfig, newSnapshot, newVolume, TEST_HOST } from '../../testing/nfs-driver.js';
import type { ScanResult, VolumeRef } from '../driver.js';
import { NfsDriver } from './driver.js';
import { onFault, type FaultPoint } from './faults.js';

// Issue 18, finding 10: a crash between two file-system steps (not only around a command), at each
// fault point of the driver: the call stops there for good, a fresh driver (as after a restart) scans,
// removes its leftovers, and the share holds what the operation's table in recovery.md says.

/** Makes the driver's next pass of `point` never return, as a crash there; resolves when it is reached. */
function stopAt(point: FaultPoint): Promise<void> {
  return new Promise((reached) => {
    onFault(async (at) => {
      if (at !== point) return;
      onFault(null);
      reached();
      await new Promise(() => {});
    });
  });
}

describe.each(['qcow2', 'raw'] as const)('NFS crash between file-system steps (%s)', (format) => {
  let share: string;
  const makeDriver = () => new NfsDriver(nfsConfig(share, { format }), { run, hostId: TEST_HOST });
  const path = (file: string) => join(share, file);
  const write = (file: string, fmt: string, pattern: number) =>
    run(['qemu-io', '-f', fmt, '-c', `write -P 0x${pattern.toString(16)} 0 1M`, path(file)]);

  /** Runs `op` until `point`, then restarts: returns the fresh driver and its scan after removing leftovers. */
  async function crashAt(point: FaultPoint, op: (d: NfsDriver) => Promise<unknown>): Promise<{ fresh: NfsDriver; scan: ScanResult }> {
    const reached = stopAt(point);
    void op(makeDriver());
    await reached;
    const fresh = makeDriver();
    for (const leftover of (await fresh.scan()).leftovers) await fresh.removeLeftover(leftover);
    const scan = await fresh.scan();
    expect(scan.leftovers).toEqual([]);
    return { fresh, scan };
  }

  /** A 1 GiB volume holding 0x11 with one snapshot, then 0x22 written over it. */
  async function snapped(): Promise<{ vol: VolumeRef; snapId: string }> {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    await write(`volume-${vol.id}`, format, 0x11);
    const snap = await newSnapshot(driver, vol);
    await write(vol.location.activeFile as string, 'qcow2', 0x22);
    return { vol, snapId: snap.id };
  }

  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-crash-fs-'));
  });
  afterEach(async () => {
    onFault(null);
    await rm(share, { recursive: true, force: true });
  });

  it('create, before the publishing rename: nothing published, the partial copy removed; a retry makes it', async () => {
    const vol: VolumeRef = { id: randomUUID(), size: 1, location: {} };
    const { fresh, scan } = await crashAt('publish:before-rename', (d) => d.createVolume(vol));
    expect(scan.volumes).toEqual([]);
    expect(await readdir(share)).toEqual([]);
    await fresh.createVolume(vol);
    expect((await fresh.scan()).volumes.map((v) => v.id)).toEqual([vol.id]);
  });

  it('clone, after the publishing rename: the clone is complete, with all of its data', async () => {
    const { vol } = await snapped();
    const clone: VolumeRef = { id: randomUUID(), size: 2, location: {} };
    const { scan } = await crashAt('publish:after-rename', (d) => d.cloneVolume(clone, vol));
    expect(scan.volumes.map((v) => v.id).sort()).toEqual([vol.id, clone.id].sort());
    expect(scan.strays).toEqual([]);
    expect(await imageReadsPattern(path(`volume-${clone.id}`), format, 0x22)).toBe(true);
  });

  it('revert, before the publishing rename: the volume reads as before; a retry reverts it', async () => {
    const { vol, snapId } = await snapped();
    const snap = { id: snapId, volumeId: vol.id, volumeSize: 1, location: {} };
    const { fresh } = await crashAt('publish:before-rename', (d) => d.revertToSnapshot(vol, snap));
    expect(await imageReadsPattern(path(vol.location.activeFile as string), 'qcow2', 0x22)).toBe(true);
    await fresh.revertToSnapshot(vol, snap);
    expect(await imageReadsPattern(path(vol.location.activeFile as string), 'qcow2', 0x11)).toBe(true);
  });

  it('snapshot create, overlay made but not recorded: the claimed orphan is removed, the volume as before', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    await write(`volume-${vol.id}`, format, 0x11);
    const snap = { id: randomUUID(), volumeId: vol.id, volumeSize: 1, location: {} };
    const { fresh, scan } = await crashAt('snapshot-create:overlay-made', (d) => d.createSnapshot(snap, vol));
    expect(scan.snapshots).toEqual([]);
    expect(await readdir(share)).toEqual([`volume-${vol.id}`]);
    await fresh.createSnapshot(snap, vol);
    expect((await fresh.scan()).snapshots.map((s) => s.id)).toEqual([snap.id]);
  });

  it('snapshot create, recorded: the snapshot stands, its claim is gone', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    const snap = { id: randomUUID(), volumeId: vol.id, volumeSize: 1, location: {} };
    const { scan } = await crashAt('snapshot-create:recorded', (d) => d.createSnapshot(snap, vol));
    expect(scan.snapshots.map((s) => s.id)).toEqual([snap.id]);
    expect((await readdir(share)).sort()).toEqual([`volume-${vol.id}`, `volume-${vol.id}.${snap.id}`, `volume-${vol.id}.info`].sort());
  });

  it('snapshot delete, recorded but the overlay not removed: the claimed orphan is removed, the data kept', async () => {
    const { vol, snapId } = await snapped();
    const snap = { id: snapId, volumeId: vol.id, volumeSize: 1, location: {} };
    const { scan } = await crashAt('snapshot-delete:recorded', (d) => d.deleteSnapshot(snap, vol));
    expect(scan.snapshots).toEqual([]);
    expect(scan.strays).toEqual([]);
    expect((await readdir(share)).sort()).toEqual([`volume-${vol.id}`, `volume-${vol.id}.info`]);
    expect(await imageReadsPattern(path(`volume-${vol.id}`), format, 0x22)).toBe(true);
  });

  it('volume delete, record removed: the volume is still found, its overlays strays; a retry deletes all', async () => {
    const { vol } = await snapped();
    const { fresh, scan } = await crashAt('volume-delete:record-removed', (d) => d.deleteVolume(vol));
    expect(scan.volumes.map((v) => v.id)).toEqual([vol.id]);
    await fresh.deleteVolume(vol);
    expect(await readdir(share)).toEqual([]);
  });
});
