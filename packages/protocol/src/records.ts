import type { ErrorInfo } from './errors.js';

export type DriverName = 'lvm' | 'nfs';

export type VolumeStatus =
  | 'creating'
  | 'available'
  | 'in-use'
  | 'extending'
  | 'reverting'
  | 'deleting'
  | 'deleted'
  | 'error'
  | 'error_deleting';

export type SnapshotStatus = 'creating' | 'available' | 'deleting' | 'deleted' | 'error' | 'error_deleting';

/** Where a resource lives on its backend: driver-owned, opaque to the service and the SDK. */
export type Location = Record<string, string | number | boolean | null>;

export interface VolumeRecord {
  id: string;
  backend: string;
  name: string | null;
  description: string | null;
  size: number;
  status: VolumeStatus;
  metadata: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  sourceVolId: string | null;
  snapshotId: string | null;
  location: Location;
  /** The last failure, kept while the volume is in an error status. */
  error: ErrorInfo | null;
  /** While `reverting`: the snapshot the data goes back to, so recovery can finish the revert after a crash. */
  revertingTo?: string;
}

export interface SnapshotRecord {
  id: string;
  backend: string;
  volumeId: string;
  name: string | null;
  description: string | null;
  volumeSize: number;
  status: SnapshotStatus;
  createdAt: string;
  updatedAt: string;
  location: Location;
  error: ErrorInfo | null;
}

export type GroupSnapshotStatus = 'creating' | 'available' | 'deleting' | 'deleted' | 'error';

/**
 * Snapshots of several volumes of one agent cut at one instant (docs/api.md, "Group snapshots"). Each
 * member is a normal snapshot record; `snapshotIds[i]` is the snapshot of `volumeIds[i]`, its id chosen
 * before any is taken, so recovery after a kill knows every member it may have to remove.
 */
export interface GroupSnapshotRecord {
  id: string;
  name: string | null;
  status: GroupSnapshotStatus;
  volumeIds: string[];
  snapshotIds: string[];
  createdAt: string;
  updatedAt: string;
  error: ErrorInfo | null;
}

/** cinderlib's connector dict, camelCase: what a host says about itself to get a connection. */
export interface ConnectorInfo {
  host?: string;
  initiator?: string;
  ip?: string;
  multipath?: boolean;
  platform?: string;
  osType?: string;
  [key: string]: unknown;
}

/** cinder's connection info: `{ driverVolumeType, data }`. */
export interface ConnectionInfo {
  driverVolumeType: string;
  data: Record<string, unknown>;
}

export interface ConnectionRecord {
  id: string;
  backend: string;
  volumeId: string;
  connectorInfo: ConnectorInfo;
  connectionInfo: ConnectionInfo;
  /** Local device or file on the agent's host, for a local attach. */
  path: string | null;
  attached: boolean;
  createdAt: string;
}

export interface BackendInfo {
  name: string;
  driver: DriverName;
}

export interface BackendStats {
  backendName: string;
  driver: DriverName;
  vendorName: string;
  driverVersion: string;
  storageProtocol: string;
  totalCapacityGb: number;
  freeCapacityGb: number;
  provisionedCapacityGb: number;
  thinProvisioningSupport: boolean;
  thickProvisioningSupport: boolean;
  maxOverSubscriptionRatio: number;
  reservedPercentage: number;
  totalVolumes: number;
  totalSnapshots: number;
  /**
   * GiB the largest new volume may take, by the capacity rule (capacity.ts), where that differs from
   * the rule over the sums above: an NFS backend's volume must fit on one share.
   */
  maxVolumeSizeGb?: number;
  /** Driver-specific gauges (thin pool data%, VG metadata area free, ...). */
  extra?: Record<string, number | string | boolean>;
}

/** Which operations a backend supports as configured (asked before trying, as Proxmox's volume_has_feature). */
export interface Capabilities {
  snapshot: boolean;
  /** Snapshots taken or deleted while the volume is connected (NFS needs the compute host's help: no). */
  snapshotInUse: boolean;
  clone: boolean;
  createFromSnapshot: boolean;
  revertToSnapshot: boolean;
  extend: boolean;
  extendWithSnapshots: boolean;
  /** Thick LVM origins must be deactivated to grow while they have snapshots, so not while in use. */
  extendInUseWithSnapshots: boolean;
  attach: boolean;
  connect: boolean;
  thin: boolean;
  /** Connection protocols served to other hosts (`nfs`, `iscsi`). */
  protocols: string[];
}
