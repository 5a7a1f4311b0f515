import { UnsupportedError, type Capabilities } from '@kindling/protocol';
import type { Driver } from '../drivers/driver.js';

/** Refuses, with the feature named, a call the backend does not support as configured. */
export function requireCapability(driver: Driver, feature: keyof Capabilities, action: string): void {
  if (driver.capabilities()[feature] !== true) {
    throw new UnsupportedError(`backend ${driver.name} does not support ${action}`, { backend: driver.name, feature });
  }
}
