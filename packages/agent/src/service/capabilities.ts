import { ConflictError, UnsupportedError, type Capabilities, type VolumeRecord } from '@kindling/protocol';
import type { Driver } from '../drivers/driver.js';

/** Refuses, with the feature named, a call the backend does not support as configured. */
export function requireCapability(driver: Driver, feature: keyof Capabilities, action: string): void {
  if (driver.capabilities()[feature] !== true) {
    throw new UnsupportedError(`backend ${driver.name} does not support ${action}`, { backend: driver.name, feature });
  }
}

/**
 * Refuses, with the feature named, a call the backend supports but not while the volume is in use
 * (CONFLICT: detaching makes it possible, unlike a missing feature).
 */
export function refuseWhileInUse(driver: Driver, volume: VolumeRecord, feature: keyof Capabilities, action: string): void {
  if (volume.status === 'in-use' && driver.capabilities()[feature] !== true) {
    throw new ConflictError(`backend ${driver.name} cannot ${action} volume ${volume.id} while it is in use; detach it first`, {
      id: volume.id,
      status: volume.status,
      feature,
    });
  }
}

/**
 * A copy of a volume's data (a snapshot, or a clone, which NFS makes through a temporary snapshot) is
 * taken while the volume is in use only where the backend can snapshot it in use: elsewhere the
 * attached host keeps writing what is being copied, and the copy would be torn.
 */
export function refuseTornCopy(driver: Driver, volume: VolumeRecord, action: string): void {
  refuseWhileInUse(driver, volume, 'snapshotInUse', action);
}
