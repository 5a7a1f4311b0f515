import {
  ConflictError,
  InvalidArgumentError,
  KindlingError,
  NotFoundError,
  type ConnectorInfo,
  type ErrorInfo,
  type Location,
  type OpArgs,
  type VolumeRecord,
  type VolumeStatus,
} from '@kindling/protocol';
import { splitCall, type CallOptions } from './call-options.js';
import type { Backend, Connection, Registry, Snapshot } from './registry.js';
import { SCHEMA_VERSION, VOLUME_FIELDS, pick, type SerializedText, type VolumeDump, type VolumeJson } from './serialization.js';
import { Tracked } from './tracked.js';
import { allPages } from './paging.js';

declare module './registry.js' {
  interface Classes {
    Volume: InstanceType<typeof Volume>;
  }
}
type VolumeFields = Pick<VolumeRecord, (typeof VOLUME_FIELDS)[number]>;

export type CreateSnapshotOptions = Omit<OpArgs<'snapshot.create'>, 'volumeId'> & CallOptions;
/** `backend`: a backend of this or any other connected agent; the copy then flows agent to agent (docs/api.md, "Moving volumes"). */
export type CloneOptions = Omit<OpArgs<'volume.clone'>, 'id'> & CallOptions & { backend?: Backend };
export type MigrateOptions = Pick<CallOptions, 'onProgress' | 'requestId'> & { backend: Backend };

/**
 * cinderlib's Volume. Replies and agent pushes update this very object; `on('status', fn)` hears
 * every status change. A call that fails rejects with the protocol's typed error, and the object
 * already shows the agent's record of the failure (the agent pushes it before it replies).
 * `on('progress', fn)` hears how far a long copy for it, or started by a call on it, has got.
 */
export class Volume extends Tracked<VolumeStatus> {
  readonly id: string;
  /** Tracked locally: the snapshots this agent connection knows of, each the same object every time. */
  readonly snapshots = new Set<Snapshot>();
  readonly connections: Connection[] = [];
  readonly #registry: Registry;
  #backend: Backend;
  /** The agent's record as last heard: replies and pushes replace it, the getters read it. */
  #fields: VolumeFields;

  /** @internal Made by the identity map only. */
  constructor(registry: Registry, backend: Backend, record: VolumeRecord) {
    super(record.status);
    this.#registry = registry;
    this.id = record.id;
    this.#backend = backend;
    this.#fields = pick(record, VOLUME_FIELDS);
  }

  /**
   * The Backend it lives on (a stub when loaded from JSON of a backend this agent lacks); the one the
   * agent's record names once a reply or push brings it (e.g. after `refresh()`).
   */
  get backend(): Backend {
    return this.#backend;
  }

  get name(): string | null {
    return this.#fields.name;
  }
  get description(): string | null {
    return this.#fields.description;
  }
  /** GiB. */
  get size(): number {
    return this.#fields.size;
  }
  get metadata(): Record<string, string> {
    return this.#fields.metadata;
  }
  get createdAt(): string {
    return this.#fields.createdAt;
  }
  get updatedAt(): string {
    return this.#fields.updatedAt;
  }
  /** The volume it was cloned from, else null. */
  get sourceVolId(): string | null {
    return this.#fields.sourceVolId;
  }
  /** The snapshot it was created from, else null. */
  get snapshotId(): string | null {
    return this.#fields.snapshotId;
  }
  get location(): Location {
    return this.#fields.location;
  }
  /** The last failure, kept while the volume is in an error status. */
  get error(): ErrorInfo | null {
    return this.#fields.error;
  }

  /** @internal The identity map moves it to the backend the agent's record names. */
  rehome(backend: Backend): void {
    this.#backend = backend;
  }

  /** @internal */
  applyRecord(record: VolumeRecord): void {
    this.#fields = pick(record, VOLUME_FIELDS);
    this.setStatus(record.status);
  }

  /** The new snapshot, also added to `vol.snapshots`. */
  async createSnapshot(options: CreateSnapshotOptions = {}): Promise<Snapshot> {
    const { args, call } = splitCall(options);
    const record = await this.#registry.call('snapshot.create', { volumeId: this.id, ...args }, { ...call, origin: this });
    return this.#registry.snapshotFrom(record, this);
  }

  /** The agent refuses (ConflictError) while snapshots exist. Afterwards the object shows status `deleted`. */
  async delete(options: CallOptions = {}): Promise<void> {
    await this.#registry.call('volume.delete', { id: this.id }, { ...options, origin: this });
    this.#registry.volumeGone(this);
  }

  /** Grows to `newSize` GiB; `vol.size` follows. */
  async extend(newSize: number, options: CallOptions = {}): Promise<void> {
    this.#registry.volumeFrom(await this.#registry.call('volume.extend', { id: this.id, size: newSize }, { ...options, origin: this }));
  }

  /**
   * Settles this volume's record against storage (admin only), for a volume left in `error`: it reads
   * `available` (or `in-use`) again when storage holds it whole; refused (ConflictError) when storage
   * does not, or when a delete was started (delete it again). A delete that had got through on storage
   * leaves it `deleted`.
   */
  async resetState(options: CallOptions = {}): Promise<Volume> {
    const record = await this.#registry.call('volume.resetState', { id: this.id }, { ...options, origin: this });
    if (record.status !== 'deleted') return this.#registry.volumeFrom(record);
    this.#registry.volumeGone(this);
    return this;
  }

  /** The new volume; this one emits the copy's `progress`, as does the clone once the identity map holds it. */
  async clone({ backend, ...options }: CloneOptions = {}): Promise<Volume> {
    const { args, call } = splitCall(options);
    if (backend && backend !== this.backend) {
      const ticket = await this.#registry.call('transfer.open', { volumeId: this.id });
      return backend.receiveCopy(ticket, args, { ...call, origin: this });
    }
    const record = await this.#registry.call('volume.clone', { id: this.id, ...args }, { ...call, origin: this });
    return this.#registry.volumeFrom(record, { fresh: true });
  }

  /**
   * Moves it to `backend` (of any connected agent): a copy there with this volume's name, description
   * and metadata, then this one deleted, only once the copy is published and recorded `available`.
   * Refused (ConflictError, nothing done) while it has snapshots (naming them: moving a snapshot chain is
   * not built) or connections. Resolves with the new Volume; this object then shows `deleted`.
   */
  async migrate({ backend, ...call }: MigrateOptions): Promise<Volume> {
    if (backend === this.backend) throw new InvalidArgumentError(`volume ${this.id} is already on backend ${backend.name}`, { id: this.id });
    const registry = this.#registry;
    const [snapshots, connections] = await Promise.all([
      allPages('snapshots', (paging) => registry.call('snapshot.list', { volumeId: this.id, ...paging })),
      allPages('connections', (paging) => registry.call('connection.list', { volumeId: this.id, ...paging })),
    ]);
    if (snapshots.length > 0) {
      const ids = snapshots.map((s) => s.id);
      throw new ConflictError(`volume ${this.id} has snapshot(s) ${ids.join(', ')}: delete them (or copy each with snap.createVolume) before migrating`, { id: this.id, snapshots: ids });
    }
    if (connections.length > 0) {
      throw new ConflictError(`volume ${this.id} is attached or connected: disconnect it before migrating`, { id: this.id, connections: connections.map((c) => c.id) });
    }
    const { name, description, metadata } = this.#fields;
    const copy = await this.clone({ ...call, backend, ...(name !== null ? { name } : {}), ...(description !== null ? { description } : {}), metadata });
    try {
      await this.delete();
    } catch (err) {
      // Both now exist: the caller learns which copy to keep or remove.
      if (err instanceof KindlingError) Object.assign(err.details, { copyId: copy.id });
      throw err;
    }
    return copy;
  }

  /** Attaches on the agent's own host; `conn.path` is the local device or file. */
  async attach(): Promise<Connection> {
    const { volume, connection } = await this.#registry.call('volume.attach', { id: this.id });
    this.#registry.volumeFrom(volume);
    return this.#registry.connectionFrom(connection, this);
  }

  async detach(): Promise<void> {
    const { volume, connection } = await this.#registry.call('volume.detach', { id: this.id });
    this.#registry.volumeFrom(volume);
    this.#registry.connectionEnded(connection);
  }

  /** Exports the volume to the host that `connectorInfo` describes. */
  async connect(connectorInfo: ConnectorInfo): Promise<Connection> {
    const { volume, connection } = await this.#registry.call('volume.connect', { id: this.id, connector: connectorInfo });
    this.#registry.volumeFrom(volume);
    return this.#registry.connectionFrom(connection, this);
  }

  async disconnect(connection: Connection): Promise<void> {
    if (connection.volume !== this) throw new InvalidArgumentError(`connection ${connection.id} is not of volume ${this.id}`);
    await connection.disconnect();
  }

  async revertToSnapshot(snapshot: Snapshot, options: CallOptions = {}): Promise<void> {
    if (snapshot.volume !== this) throw new InvalidArgumentError(`snapshot ${snapshot.id} is not of volume ${this.id}`);
    const record = await this.#registry.call('volume.revert', { id: this.id, snapshotId: snapshot.id }, { ...options, origin: this });
    this.#registry.volumeFrom(record);
  }

  /**
   * Reloads from the agent's index, and reloads the snapshots and connections only if this Agent had
   * them all (as cinderlib's lazy relations); the objects stay the same, and a local attachment survives
   * (cinderlib bug #1868153).
   */
  async refresh(): Promise<void> {
    const registry = this.#registry;
    const withRelations = registry.hasRelations(this);
    try {
      if (!withRelations) {
        // One call, awaited alone: a Promise.all over it and two nulls is promises and turns for nothing (issue 20).
        registry.volumeFrom(await registry.call('volume.get', { id: this.id }));
        return;
      }
      const [record, snapshots, connections] = await Promise.all([
        registry.call('volume.get', { id: this.id }),
        allPages('snapshots', (paging) => registry.call('snapshot.list', { volumeId: this.id, ...paging })),
        allPages('connections', (paging) => registry.call('connection.list', { volumeId: this.id, ...paging })),
      ]);
      registry.volumeFrom(record);
      registry.syncRelations(this, snapshots, connections);
    } catch (err) {
      if (err instanceof NotFoundError) registry.volumeGone(this);
      throw err;
    }
  }

  toDict(): VolumeRecord {
    // A copy: what a caller does with the dict must not reach the live object.
    return structuredClone({ id: this.id, backend: this.backend.name, status: this.status, ...this.#fields });
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
