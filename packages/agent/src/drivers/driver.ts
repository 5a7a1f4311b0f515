import type {
  BackendStats,
  Capabilities,
  ConnectionInfo,
  ConnectionRecord,
  ConnectorInfo,
  DriverName,
  Location,
} from '@kindling/protocol';

/** What a driver needs to know of a volume: its id (which names it on storage), size and location. */
export interface VolumeRef {
  id: string;
  size: number;
  location: Location;
}

export interface SnapshotRef {
  id: string;
  volumeId: string;
  volumeSize: number;
  location: Location;
}

/** A driver's part of the stats; the service adds names and the index's counts. */
export type DriverStats = Omit<BackendStats, 'backendName' | 'driver' | 'totalVolumes' | 'totalSnapshots'>;

export interface Readiness {
  ready: boolean;
  /** Why not ready (VG missing, share not writable). */
  reason?: string;
  /** Ready, but heading for trouble (VG metadata area nearly full). */
  warnings?: string[];
}

export interface Attachment {
  path: string | null;
  connectionInfo: ConnectionInfo;
}

/**
 * Kindling's own temporary artifact of an operation (a `.part` file, a clone's temporary snapshot, an
 * LV waiting to be zeroed). Found by scan(); when no operation is running (at start) it is provably a
 * leftover of one that died, and removeLeftover() takes it away.
 */
export interface Leftover {
  kind: LeftoverKind;
  /**
   * The resource whose storage it sits on, which the service locks while removing it: the new volume for
   * a partial copy, the source volume for a clone's temporary snapshot on the source's chain.
   */
  id: string;
  /** Where it is, for people: a path on a share, or `vg/lv`. */
  where: string;
}

export type LeftoverKind =
  /** A volume being made or filled under its temporary name (never published). */
  | 'partial-volume'
  /** A temporary snapshot taken to copy from (NFS `tmp-snap-<id>` overlay, LVM `clone-snap-<id>`). */
  | 'temp-snapshot'
  /** An overlay no `.info` chain names (a snapshot create that died before its record was written). */
  | 'orphan-overlay'
  /** A temporary file: `.info.tmp-*`, probe files, a revert's new overlay not yet renamed in. */
  | 'temp-file'
  /** A removed volume's storage renamed aside to be zeroed and freed (LVM `volume_clear`). */
  | 'pending-clear';

/** Something found on storage that is not provably Kindling's, or could not be read: reported, never removed. */
export interface Stray {
  where: string;
  reason: string;
}

/** What storage holds, for rebuilding and verifying the index. */
export interface ScanResult {
  /** Published volumes only: the final name on storage means the operation that made it finished. */
  volumes: { id: string; size: number; location: Location }[];
  snapshots: { id: string; volumeId: string; location: Location }[];
  leftovers: Leftover[];
  strays: Stray[];
}

/** Every page of a scan as one result: scan() over scanPages(). */
export async function collectScan(pages: AsyncIterable<ScanResult>): Promise<ScanResult> {
  const all: ScanResult = { volumes: [], snapshots: [], leftovers: [], strays: [] };
  for await (const page of pages) {
    all.volumes.push(...page.volumes);
    all.snapshots.push(...page.snapshots);
    all.leftovers.push(...page.leftovers);
    all.strays.push(...page.strays);
  }
  return all;
}

/**
 * A volume's or snapshot's logical content, held still while it is read (a copy to another agent):
 * its data ranges in order; everything outside them reads as zeros and is never sent.
 */
export interface ContentReader {
  sizeBytes: number;
  ranges(): AsyncIterable<{ offset: number; length: number }>;
  /** Fills `into` with the logical bytes at `offset` (within a range `ranges()` gave). */
  read(offset: number, into: Buffer): Promise<void>;
}

/** Where a copy from another agent writes a new volume's data; what it never writes reads as zeros. */
export interface ContentSink {
  write(offset: number, data: Buffer): Promise<void>;
}

/** Writes to some volumes held (group snapshots): until `release()`, or until its time limit ran out. */
export interface WriteHold {
  /** The hold ended before `release()` (its limit passed, or its holder died): writes went on. */
  readonly expired: boolean;
  release(): Promise<void>;
}

/**
 * One storage driver, bound to one configured backend. Drivers run commands and return what the
 * record needs; they never touch the index or the wire. The service serialises calls per resource.
 * A driver throws ConflictError, InvalidArgumentError or UnsupportedError only when it refused before
 * changing anything on storage (no room, not the latest snapshot, an image too big for the volume, a
 * hostile file): the service then puts the record back as it was, instead of an error status.
 *
 * Crash rules (each operation's steps: lvm/recovery.md, nfs/recovery.md): a volume is made or filled
 * under a temporary name, flushed, then published under its final name in one step, so the final name
 * means "complete". Deletes and reverts are resumable: called again after an interruption at any step, they
 * finish the job. scan() never throws for one bad file: it skips and reports it as a stray.
 */
export interface Driver {
  readonly driver: DriverName;
  readonly name: string;
  /** Validates config against the host (VG exists, shares mounted); a failure keeps the backend not ready. */
  start(): Promise<void>;
  readiness(): Promise<Readiness>;
  capabilities(): Capabilities;
  stats(refresh: boolean): Promise<DriverStats>;

  createVolume(volume: VolumeRef): Promise<Location>;
  /** Idempotent: a volume already gone on storage is not an error. */
  deleteVolume(volume: VolumeRef): Promise<void>;
  extendVolume(volume: VolumeRef, newSize: number): Promise<Location>;
  /**
   * `inUse`: the volume is attached or connected, its writes going on, and the backend lacks the
   * `snapshotInUse` capability. A driver with `snapshotsWhenServed` then takes the snapshot live when
   * this host serves the volume so that it can switch its writes (NFS: qemu-storage-daemon), and
   * refuses it otherwise.
   */
  createSnapshot(snapshot: SnapshotRef, volume: VolumeRef, inUse?: boolean): Promise<{ snapshot: Location; volume: Location }>;
  /** Snapshots an in-use volume, and deletes its snapshots, when this host serves it (createSnapshot's `inUse`). */
  readonly snapshotsWhenServed?: true;
  /** Idempotent; returns the volume's location after the chain changed. */
  deleteSnapshot(snapshot: SnapshotRef, volume: VolumeRef, inUse?: boolean): Promise<{ volume: Location }>;
  createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef, source: VolumeRef): Promise<Location>;
  cloneVolume(volume: VolumeRef, source: VolumeRef): Promise<Location>;
  /** Resumable: called again after a crash at any step (recovery does), it finishes the revert. */
  revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<Location>;

  attach(volume: VolumeRef): Promise<Attachment>;
  detach(volume: VolumeRef, connection: ConnectionRecord): Promise<void>;
  /** Throws InvalidArgumentError when the connector lacks what this backend's protocol needs. */
  validateConnector(connector: ConnectorInfo): void;
  connect(volume: VolumeRef, connector: ConnectorInfo, others: ConnectionRecord[]): Promise<Attachment>;
  /** `others` are the volume's remaining connections: the export goes with the last one. */
  disconnect(volume: VolumeRef, connection: ConnectionRecord, others: ConnectionRecord[]): Promise<void>;
  /** The volume's size in bytes as the connected host will now see it (after an extend). */
  connectionSize(volume: VolumeRef, connection: ConnectionRecord): Promise<number>;

  /**
   * Copies between agents (optional: a backend without them answers UNSUPPORTED). The reads run `use`
   * while the content is held still (the service holds the volume's lock); `writeVolume` makes a new
   * volume under its temporary name, lets `fill` write it, flushes and publishes it as createVolume does.
   */
  /**
   * Holds writes to these volumes (in use: a host may be writing them) until `release()`, for at most
   * `limitMs`, and ends the hold however the agent dies (optional: without it a group snapshot refuses
   * members in use). Snapshots of held volumes are taken while held.
   */
  holdWrites?(volumes: VolumeRef[], limitMs: number): Promise<WriteHold>;

  readVolume?<T>(volume: VolumeRef, use: (reader: ContentReader) => Promise<T>): Promise<T>;
  readSnapshot?<T>(snapshot: SnapshotRef, volume: VolumeRef, use: (reader: ContentReader) => Promise<T>): Promise<T>;
  writeVolume?(volume: VolumeRef, sizeBytes: number, fill: (sink: ContentSink) => Promise<void>): Promise<Location>;

  /**
   * Never throws for one vanished, half-written or foreign file: it is skipped and listed in `strays`.
   * Once `signal` aborts (the agent stops), it stops between files or LVs and rejects with its reason.
   */
  scan(signal?: AbortSignal): Promise<ScanResult>;
  /**
   * What scan() finds, a page at a time (a volume with its snapshots always in one page): a caller that
   * compares as pages come holds one page, not all of storage (the check after ready at 100,000 volumes).
   */
  scanPages(signal?: AbortSignal): AsyncIterable<ScanResult>;
  /** Removes one leftover found by scan(); only called when no operation on `leftover.id` can be running. */
  removeLeftover(leftover: Leftover): Promise<void>;
  /** Ends what the driver keeps running between operations (the LVM driver's lvm shell), at the agent's stop. */
  close?(): void;
}
