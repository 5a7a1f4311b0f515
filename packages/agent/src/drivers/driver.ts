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

/** What storage holds, for rebuilding and verifying the index. */
export interface ScanResult {
  volumes: { id: string; size: number; location: Location }[];
  snapshots: { id: string; volumeId: string; location: Location }[];
}

/**
 * One storage driver, bound to one configured backend. Drivers run commands and return what the
 * record needs; they never touch the index or the wire. The service serialises calls per resource.
 * A driver throws ConflictError only when it refused before changing anything on storage (no room,
 * not the latest snapshot): the service then puts the record back as it was, instead of an error status.
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
  createSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ snapshot: Location; volume: Location }>;
  /** Idempotent; returns the volume's location after the chain changed. */
  deleteSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ volume: Location }>;
  createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef, source: VolumeRef): Promise<Location>;
  cloneVolume(volume: VolumeRef, source: VolumeRef): Promise<Location>;
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

  scan(): Promise<ScanResult>;
}
