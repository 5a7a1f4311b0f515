import type { BackendConfig } from '../config.js';
import type { Runner } from '../exec/run.js';
import type { Driver } from './driver.js';
import { withStorageErrors } from './storage-errors.js';

export interface DriverDeps {
  run: Runner;
  dataDir: string;
  /** The agent's host id: drivers on shared storage tag what they make with it. */
  hostId: string;
}

export type CreateDriver = (config: BackendConfig, deps: DriverDeps) => Driver;

/**
 * Loads the code of the drivers `configs` use, and only theirs (an NFS-only agent compiles no LVM
 * driver at start); the function returned makes a backend's driver.
 */
export async function loadDrivers(configs: readonly BackendConfig[]): Promise<CreateDriver> {
  const used = new Set(configs.map((c) => c.driver));
  const [lvm, nfs] = await Promise.all([used.has('lvm') ? import('./lvm/driver.js') : null, used.has('nfs') ? import('./nfs/driver.js') : null]);
  return (config, deps) => {
    if (config.driver === 'lvm' && lvm) return withStorageErrors(new lvm.LvmDriver(config, deps));
    if (config.driver === 'nfs' && nfs) return withStorageErrors(new nfs.NfsDriver(config, deps));
    throw new Error(`the ${config.driver} driver was not loaded`);
  };
}
