import { ConflictError, type SnapshotStatus, type VolumeStatus } from '@kindling/protocol';

/** Refuses an operation unless the resource is in one of the statuses it may start from. */
export function requireStatus<S extends VolumeStatus | SnapshotStatus>(
  resource: { id: string; status: S },
  allowed: readonly S[],
  action: string,
): void {
  if (!allowed.includes(resource.status)) {
    throw new ConflictError(`cannot ${action} ${resource.id} while it is ${resource.status}`, {
      id: resource.id,
      status: resource.status,
      allowed: [...allowed],
    });
  }
}

/** Statuses from which data can be read: snapshot, clone, extend. */
export const READABLE: readonly VolumeStatus[] = ['available', 'in-use'];
/** Statuses from which a resource may be deleted (cinder allows retrying a failed delete). */
export const DELETABLE: readonly VolumeStatus[] = ['available', 'error', 'error_deleting'];
export const SNAPSHOT_DELETABLE: readonly SnapshotStatus[] = ['available', 'error', 'error_deleting'];
export const SNAPSHOT_READY: readonly SnapshotStatus[] = ['available'];
