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

/**
 * Every status by what it says of the resource, so that adding a status fails to compile until it is
 * placed here: `transient` means an operation was running (recovery resolves it after a crash).
 */
type Phase = 'transient' | 'settled' | 'error' | 'gone';
const VOLUME_PHASE = {
  creating: 'transient',
  available: 'settled',
  'in-use': 'settled',
  extending: 'transient',
  reverting: 'transient',
  deleting: 'transient',
  deleted: 'gone',
  error: 'error',
  error_deleting: 'error',
} as const satisfies Record<VolumeStatus, Phase>;
const SNAPSHOT_PHASE = {
  creating: 'transient',
  available: 'settled',
  deleting: 'transient',
  deleted: 'gone',
  error: 'error',
  error_deleting: 'error',
} as const satisfies Record<SnapshotStatus, Phase>;

type Transient<P extends Record<string, Phase>> = { [S in keyof P]: P[S] extends 'transient' ? S : never }[keyof P];
export type TransientVolumeStatus = Transient<typeof VOLUME_PHASE>;
type TransientSnapshotStatus = Transient<typeof SNAPSHOT_PHASE>;

/** The statuses an operation in flight leaves, for the index's by-status lookup. */
export const TRANSIENT_VOLUME_STATUSES = Object.keys(VOLUME_PHASE).filter((s) => VOLUME_PHASE[s as VolumeStatus] === 'transient');
export const TRANSIENT_SNAPSHOT_STATUSES = Object.keys(SNAPSHOT_PHASE).filter((s) => SNAPSHOT_PHASE[s as SnapshotStatus] === 'transient');

export const volumePhase = (status: VolumeStatus): Phase => VOLUME_PHASE[status];
export const snapshotPhase = (status: SnapshotStatus): Phase => SNAPSHOT_PHASE[status];
export const isTransientVolume = <V extends { status: VolumeStatus }>(v: V): v is V & { status: TransientVolumeStatus } =>
  VOLUME_PHASE[v.status] === 'transient';
export const isTransientSnapshot = <S extends { status: SnapshotStatus }>(s: S): s is S & { status: TransientSnapshotStatus } =>
  SNAPSHOT_PHASE[s.status] === 'transient';

/** Statuses no operation is running in: an operator may settle the record against storage. */
export const SETTLED_OR_FAILED: readonly VolumeStatus[] = (Object.keys(VOLUME_PHASE) as VolumeStatus[]).filter(
  (status) => VOLUME_PHASE[status] === 'settled' || VOLUME_PHASE[status] === 'error',
);
