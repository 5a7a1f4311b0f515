import { BackendError, ConflictError, UnsupportedError, type Capabilities, type VolumeRecord } from '@kindling/protocol';
import { deviceMapperMissing } from '../device-mapper.js';
import type { Driver } from '../drivers/driver.js';

/** What an LVM backend can do only by activating an LV: without device-mapper each would leave an `error` record. */
const NEEDS_DEVICE_MAPPER: readonly (keyof Capabilities)[] = ['snapshot', 'snapshotInUse', 'clone', 'createFromSnapshot', 'revertToSnapshot'];

/** Why this host has no device-mapper, once probed (device-mapper belongs to the host, not to one backend). */
let noDeviceMapper: string | undefined;

/** Probes the host once at start, for the LVM backends' capabilities. */
export async function probeHost(): Promise<void> {
  noDeviceMapper = await deviceMapperMissing();
}

const lacksDeviceMapper = (driver: Driver, feature: keyof Capabilities): boolean =>
  driver.driver === 'lvm' && noDeviceMapper !== undefined && NEEDS_DEVICE_MAPPER.includes(feature);

/** The backend's capabilities on this host: an LVM backend without device-mapper offers no snapshot or clone. */
export function capabilitiesOf(driver: Driver): Capabilities {
  const capabilities = driver.capabilities();
  if (driver.driver !== 'lvm' || noDeviceMapper === undefined) return capabilities;
  return { ...capabilities, ...Object.fromEntries(NEEDS_DEVICE_MAPPER.map((f) => [f, false])) };
}

/** Refuses, with the feature named, a call the backend does not support as configured (or on this host). */
export function requireCapability(driver: Driver, feature: keyof Capabilities, action: string): void {
  if (capabilitiesOf(driver)[feature] === true) return;
  if (lacksDeviceMapper(driver, feature)) {
    throw new UnsupportedError(`backend ${driver.name} does not support ${action} on this host: no device-mapper (${noDeviceMapper})`, {
      backend: driver.name,
      feature,
      reason: 'no device-mapper',
    });
  }
  throw new UnsupportedError(`backend ${driver.name} does not support ${action}`, { backend: driver.name, feature });
}

/**
 * An LVM delete that failed on a host without device-mapper: zeroing (volumeClear: zero) needs a device
 * node that cannot exist there, so the failure says which setting fits this host.
 */
export async function withDeviceMapperHint<T>(driver: Driver, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (driver.driver !== 'lvm' || noDeviceMapper === undefined || !(err instanceof BackendError)) throw err;
    const hint = `no device-mapper on this host: a backend that zeroes deleted volumes cannot work here, set volumeClear: none for ${driver.name}`;
    throw new BackendError(`${err.message} (${hint})`, err.details);
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
