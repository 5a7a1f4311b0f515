import type { BackendConfig } from '../config.js';
import type { Runner } from '../exec/run.js';
import type { Driver } from './driver.js';
import { LvmDriver } from './lvm/driver.js';
import { NfsDriver } from './nfs/driver.js';
import { withStorageErrors } from './storage-errors.js';

export interface DriverDeps {
  run: Runner;
  dataDir: string;
  /** The agent's host id: drivers on shared storage tag what they make with it. */
  hostId: string;
}

export function createDriver(config: BackendConfig, deps: DriverDeps): Driver {
  return withStorageErrors(config.driver === 'lvm' ? new LvmDriver(config, deps) : new NfsDriver(config, deps));
}
