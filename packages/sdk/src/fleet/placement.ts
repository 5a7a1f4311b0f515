import { roomGbOf, type BackendStats } from '@kindling/protocol';

/** One backend as placement sees it: the last capacity it pushed, less what this client is creating there now. */
export interface Candidate<K> {
  key: K;
  stats: BackendStats;
  /**
   * GiB and volumes of creations sent to it and not yet answered, or answered but not yet in `stats`,
   * so parallel and back-to-back creates spread out.
   */
  pendingGb: number;
  pendingVolumes: number;
  /** Breaks exact ties the same way every time (e.g. `hostId/backend`). */
  order: string;
}

export interface Ranked<K> {
  key: K;
  stats: BackendStats;
  roomGb: number;
}

/**
 * The candidates with room for `sizeGb`, best first: most room, then fewest volumes, then `order`.
 * Room is compared in whole GiB (sizes are whole GiB): free space that differs by a few blocks between
 * two hosts on like disks is a tie for the volume count to break, not a win.
 */
export function rank<K>(candidates: readonly Candidate<K>[], sizeGb: number): Ranked<K>[] {
  return candidates
    .map((c) => ({ c, room: roomGbOf(c.stats) - c.pendingGb, volumes: c.stats.totalVolumes + c.pendingVolumes }))
    .filter(({ room }) => room >= sizeGb)
    .sort((a, b) => Math.floor(b.room) - Math.floor(a.room) || a.volumes - b.volumes || a.c.order.localeCompare(b.c.order))
    .map(({ c, room }) => ({ key: c.key, stats: c.stats, roomGb: room }));
}
