import type { OpName } from '@kindling/protocol';

/**
 * Ops that copy or zero data and so take as long as the data is big: a 100 GiB clone outlasts any fixed
 * deadline. They get none by default while keepalive pings watch the link (a dead link is dropped and the
 * call re-sent), so the caller gets the outcome instead of a TIMEOUT while the agent finishes.
 */
export const LONG_OPS: ReadonlySet<OpName> = new Set<OpName>([
  'volume.clone',
  'snapshot.createVolume',
  'volume.revert',
  'volume.extend',
  // Thick LVM volumes are zeroed on delete; an NFS snapshot delete commits its data into the base.
  'volume.delete',
  'snapshot.delete',
]);

/** Default BUSY back-off when the agent names none, and the most the SDK waits on its word. */
export const BUSY_DEFAULT_MS = 100;
export const BUSY_MAX_MS = 30_000;
