import {
  InvalidArgumentError,
  NotFoundError,
  type ConnectorInfo,
  type ErrorInfo,
  type Location,
  type OpArgs,
  type VolumeRecord,
  type VolumeStatus,
} from '@kindling/protocol';
import type { Backend } from './backend.js';
import { splitCall, type CallOptions } from './call-options.js';
import type { Connection } from './connection.js';
import { SCHEMA_VERSION, VOLUME_FIELDS, pick, type SerializedText, type VolumeDump, type VolumeJson } from './serialization.js';
import type { Session } from './session.js';
import type { Snapshot } from './snapshot.js';
import { Tracked } from './tracked.js';

export type CreateSnapshotOptions = Omit<OpArgs<'snapshot.create'>, 'volumeId'> & CallOptions;
export type CloneOptions = Omit<OpArgs<'volume.clone'>, 'id'> & CallOptions;

/**
 * cinderlib's Volume. Replies and agent pushes update this very object; `on('status', fn)` hears
 * every status change. A call that fails rejects with the protocol's typed error, and the object
 * already shows the agent's record of the failure (the agent pushes it before it replies).
 * `on('progress', fn)` hears how far a long copy for it, or started by a call on it, has got.
 */
export class Volume extends Tracked<VolumeStatus> {
  readonly id: string;
  /** The Backend it lives on (a stub when loaded from JSON of a backend this agent lacks). */
  readonly backend: Backend;
  declare readonly name: string | null;
  declare readonly description: string | null;
  /** GiB. */
  declare readonly size: number;
  declare readonly metadata: Record<string, string>;
  declare readonly createdAt: string;
  declare readonly updatedAt: string;
  /** The volume it was cloned from, else null. */
  declare readonly sourceVolId: string | null;
  /** The snapshot it was created from, else null. */
  declare readonly snapshotId: string | null;
  declare readonly location: Location;
  /** The last failure, kept while the volume is in an error status. */
  declare readonly error: ErrorInfo | null;
  /** Tracked locally: the snapshots this session knows of, each the same object every time. */
  readonly snapshots = new Set<Snapshot>();
  readonly connections: Connection[] = [];
  readonly #session: Session;

  /** @internal Made by the session's identity map only. */
  constructor(session: Session, backend: Backend, record: VolumeRecord) {
    super();
    this.#session = session;
    this.id = record.id;
    this.backend = backend;
    this.applyRecord(record);
  }

  /** @internal */
  applyRecord(record: VolumeRecord): void {
    Object.assign(this, pick(record, VOLUME_FIELDS));
    this.setStatus(record.status);
  }

  /** The new snapshot, also added to `vol.snapshots`. */
  async createSnapshot(options: CreateSnapshotOptions = {}): Promise<Snapshot> {
    const { args, call } = splitCall(options);
    const record = await this.#session.call('snapshot.create', { volumeId: this.id, ...args }, { ...call, origin: this });
    return this.#session.snapshotFrom(record, this);
  }

  /** The agent refuses (ConflictError) while snapshots exist. Afterwards the object shows status `deleted`. */
  async delete(options: CallOptions = {}): Promise<void> {
    await this.#session.call('volume.delete', { id: this.id }, { ...options, origin: this });
    this.#session.forgetVolume(this);
  }

  /** Grows to `newSize` GiB; `vol.size` follows. */
  async extend(newSize: number, options: CallOptions = {}): Promise<void> {
    this.#session.volumeFrom(await this.#session.call('volume.extend', { id: this.id, size: newSize }, { ...options, origin: this }));
  }

  /** The new volume; this one emits the copy's `progress`, as does the clone once the session holds it. */
  async clone(options: CloneOptions = {}): Promise<Volume> {
    const { args, call } = splitCall(options);
    const record = await this.#session.call('volume.clone', { id: this.id, ...args }, { ...call, origin: this });
    return this.#session.volumeFrom(record, { fresh: true });
  }

  /** Attaches on the agent's own host; `conn.path` is the local device or file. */
  async attach(): Promise<Connection> {
    const { volume, connection } = await this.#session.call('volume.attach', { id: this.id });
    this.#session.volumeFrom(volume);
    return this.#session.connectionFrom(connection, this);
  }

  async detach(): Promise<void> {
    const { volume, connection } = await this.#session.call('volume.detach', { id: this.id });
    this.#session.volumeFrom(volume);
    const conn = this.#session.connections.get(connection.id);
    if (conn) this.#session.forgetConnection(conn, connection);
  }

  /** Exports the volume to the host that `connectorInfo` describes. */
  async connect(connectorInfo: ConnectorInfo): Promise<Connection> {
    const { volume, connection } = await this.#session.call('volume.connect', { id: this.id, connector: connectorInfo });
    this.#session.volumeFrom(volume);
    return this.#session.connectionFrom(connection, this);
  }

  async disconnect(connection: Connection): Promise<void> {
    if (connection.volume !== this) throw new InvalidArgumentError(`connection ${connection.id} is not of volume ${this.id}`);
    await connection.disconnect();
  }

  async revertToSnapshot(snapshot: Snapshot, options: CallOptions = {}): Promise<void> {
    if (snapshot.volume !== this) throw new InvalidArgumentError(`snapshot ${snapshot.id} is not of volume ${this.id}`);
    const record = await this.#session.call('volume.revert', { id: this.id, snapshotId: snapshot.id }, { ...options, origin: this });
    this.#session.volumeFrom(record);
  }

  /**
   * Reloads from the agent's index, and reloads the snapshots and connections only if this session had
   * them all (as cinderlib's lazy relations); the objects stay the same, and a local attachment survives
   * (cinderlib bug #1868153).
   */
  async refresh(): Promise<void> {
    const session = this.#session;
    const withRelations = session.hasRelations(this);
    try {
      const [record, snapshots, connections] = await Promise.all([
        session.call('volume.get', { id: this.id }),
        withRelations ? session.call('snapshot.list', { volumeId: this.id }) : null,
        withRelations ? session.call('connection.list', { volumeId: this.id }) : null,
      ]);
      session.volumeFrom(record);
      if (snapshots && connections) session.syncRelations(this, snapshots, connections);
    } catch (err) {
      if (err instanceof NotFoundError) session.forgetVolume(this);
      throw err;
    }
  }

  toDict(): VolumeRecord {
    // A copy: what a caller does with the dict must not reach the live object.
    return structuredClone({ id: this.id, backend: this.backend.name, status: this.status, ...pick(this, VOLUME_FIELDS) });
  }
  get json(): VolumeJson {
    return { schemaVersion: SCHEMA_VERSION, kind: 'volume', ...this.toDict() };
  }
  get jsons(): SerializedText<VolumeJson> {
    return JSON.stringify(this.json);
  }
  /** The volume with its snapshots and connections inlined. */
  get dump(): VolumeDump {
    return {
      ...this.json,
      snapshots: [...this.snapshots].map((s) => s.toDict()),
      connections: this.connections.map((c) => c.toDict()),
    };
  }
  get dumps(): SerializedText<VolumeDump> {
    return JSON.stringify(this.dump);
  }
}
