/**
 * Crash injection between file-system steps, for the crash tests: the crash shim stalls commands, but
 * a crash between two file-system calls (a record written, a file not yet removed) needs a point in
 * the driver itself. Each point is a no-op unless a test armed it: a test in this process sets a hook
 * (`onFault`); an agent process started with `KINDLING_NFS_FAULT=<point>` kills itself there, as a
 * crash would, the first time it passes it.
 */

export type FaultPoint =
  /** A new file (volume, revert overlay) flushed, its temporary name not yet renamed. */
  | 'publish:before-rename'
  /** Renamed to its final name; the folder not yet flushed again. */
  | 'publish:after-rename'
  /** A snapshot's overlay made and flushed; the record does not name it yet. */
  | 'snapshot-create:overlay-made'
  /** A served volume's daemon switched its writes to the new overlay; the record does not name it yet. */
  | 'snapshot-create:switched'
  /** The record names the new overlay; the claim on it is not removed yet. */
  | 'snapshot-create:recorded'
  /** A deleted snapshot's overlay committed (live: the daemon's job done); the record still names it. */
  | 'snapshot-delete:committed'
  /** The record no longer names the deleted snapshot; its overlay is not removed yet. */
  | 'snapshot-delete:recorded'
  /** A volume's record removed; its overlays and base not yet. */
  | 'volume-delete:record-removed';

type Hook = (point: FaultPoint) => Promise<void>;

let hook: Hook | null = null;
const ENV = 'KINDLING_NFS_FAULT';

/** In-process tests: `hook` runs at every point (it may never return, as a crash there). Null: none. */
export function onFault(next: Hook | null): void {
  hook = next;
}

export async function fault(point: FaultPoint): Promise<void> {
  if (hook) return hook(point);
  if (process.env[ENV] === point) process.kill(process.pid, 'SIGKILL');
}
