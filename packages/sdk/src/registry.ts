import type { ConnectionRecord, OpArgs, OpName, OpResult, SnapshotRecord, VolumeListing, VolumeRecord } from '@kindling/protocol';
import type { CallOptions } from './call-options.js';
import type { ConnectionJson, Serialized, SerializedText, SnapshotJson, VolumeDump, VolumeJson } from './serialization.js';

/**
 * The SDK's object classes by name. Each class's own file adds itself here (declaration merging), so
 * that a Snapshot can say its `volume` is a Volume, and a Volume that its `snapshots` are Snapshots,
 * without the two files importing each other: the import graph stays a tree, read from this file up.
 * (A file adds `Name: InstanceType<typeof Name>`: inside the merge, a bare `Name` would be the alias
 * below, not the file's class.)
 */
export interface Classes {}

/** The classes as types, for the files that name them without importing their files. */
export type Agent = Classes['Agent'];
export type Backend = Classes['Backend'];
export type Volume = Classes['Volume'];
export type Snapshot = Classes['Snapshot'];
export type Connection = Classes['Connection'];

export type Resource = Volume | Snapshot | Connection;

/**
 * `agent.load` / `backend.load`: one object in, one out, typed by what it is (its JSON text too, when
 * typed as `jsons`/`dumps` output); an array in, an array out.
 */
export interface Load {
  (data: VolumeJson | VolumeDump | SerializedText<VolumeJson | VolumeDump>): Volume;
  (data: SnapshotJson | SerializedText<SnapshotJson>): Snapshot;
  (data: ConnectionJson | SerializedText<ConnectionJson>): Connection;
  (data: readonly Serialized[]): Resource[];
  (data: unknown): Resource | Resource[];
}

/** The object a call was made on: it hears the progress of what the call started. */
export type Origin = Volume | Snapshot;

/**
 * What a resource needs of the identity map it lives in: to call the agent, to turn the records a reply
 * brings into the one object for each id (lookup), and to let go of what the agent no longer has.
 * The identity map (IdentityMap) is the one implementation; resources hold only this.
 */
export interface Registry {
  /** The Agent this identity map belongs to: every object knows its host through its backend. */
  readonly agent: Agent;

  /** One call to the agent; progress it starts reaches `origin`, the object it was made on. */
  call<O extends OpName>(op: O, args: OpArgs<O>, options?: CallOptions & { origin?: Origin }): Promise<OpResult<O>>;

  /** The one Volume for this record, updated. `fresh`: the agent just made it, so it has no snapshots or connections yet. */
  volumeFrom(record: VolumeRecord, options?: { fresh?: boolean }): Volume;
  /** The one Snapshot for this record, updated and in `volume.snapshots`. */
  snapshotFrom(record: SnapshotRecord, volume: Volume): Snapshot;
  /** The one Connection for this record, updated and in `volume.connections`. */
  connectionFrom(record: ConnectionRecord, volume: Volume): Connection;
  /** A `volume.list` answer: each volume with its relations in full. */
  listing(listing: VolumeListing): Volume[];
  /** Live objects from serialized ones, without a round trip: `backend` restricts it to that backend's resources. */
  loader(backend?: string): Load;

  /** Whether this map holds all of the volume's snapshots and connections, so a refresh reloads them. */
  hasRelations(volume: Volume): boolean;
  /** The agent's full list of a volume's relations: the same objects updated, the ones it no longer has gone. */
  syncRelations(volume: Volume, snapshots: SnapshotRecord[], connections: ConnectionRecord[]): void;

  /** The agent no longer has it: the object shows `deleted` and leaves the map, a volume with its relations. */
  volumeGone(volume: Volume): void;
  snapshotGone(snapshot: Snapshot): void;
  /** The agent's last word on a connection it removed: the object shows it and leaves its volume. */
  connectionEnded(record: ConnectionRecord): void;
}
