import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { NfsBackendConfig } from '../config.js';
import type { SnapshotRef, VolumeRef } from '../drivers/driver.js';
import type { NfsDriver } from '../drivers/nfs/driver.js';
import { ownerTag } from '../drivers/nfs/names.js';

/** An NFS backend on one local-folder share, as the driver tests build it; `over` changes any key. */
export const nfsConfig = (share: string, over: Partial<NfsBackendConfig> = {}): NfsBackendConfig => ({
  name: 'nfs',
  driver: 'nfs',
  shares: [share],
  mountPointBase: join(share, 'never-used'),
  format: 'qcow2',
  sparse: true,
  snapshotSupport: true,
  reservedPercentage: 0,
  maxOverSubscriptionRatio: 1,
  ...over,
});

/** A new volume made by the driver, with the location it returned. */
export async function newVolume(driver: NfsDriver, size = 1): Promise<VolumeRef> {
  const ref: VolumeRef = { id: randomUUID(), size, location: {} };
  ref.location = await driver.createVolume(ref);
  return ref;
}

/** A new snapshot of `volume` made by the driver; the volume's location follows its chain. */
export async function newSnapshot(driver: NfsDriver, volume: VolumeRef): Promise<SnapshotRef> {
  const ref: SnapshotRef = { id: randomUUID(), volumeId: volume.id, volumeSize: volume.size, location: {} };
  const out = await driver.createSnapshot(ref, volume);
  ref.location = out.snapshot;
  volume.location = out.volume;
  return ref;
}

/** The host id the driver tests give their drivers (the agent passes its own). */
export const TEST_HOST = 'test-host';
/** The owner tag of a driver made with nfsConfig (backend `nfs`) and TEST_HOST. */
export const TEST_OWNER = ownerTag(TEST_HOST, 'nfs');
