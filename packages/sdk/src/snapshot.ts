import { NotFoundError, type ErrorInfo, type Location, type OpArgs, type SnapshotRecord, type SnapshotStatus } from '@kindling/protocol';
import { splitCall, type CallOptions } from './call-options.js';
import type { Backend, Registry, Volume } from './registry.js';
import { SCHEMA_VERSION, SNAPSHOT_FIELDS, pick, type SerializedText, type SnapshotJson } from './serialization.js';
import { Tracked } from './tracked.js';

declare module './registry.js' {
  interface Classes {
    Snapshot: InstanceType<typeof Snapshot>;
  }
}
type SnapshotFields = Pick<SnapshotRecord, (typeof SNAPSHOT_FIELDS)[number]>;

/** `backend`: a backend of this or any other connected agent; the copy then flows agent to agent (docs/api.md, "Moving volumes"). */
export type NewVolumeOptions = Omit<OpArgs<'snapshot.createVolume'>, 'id'> & CallOptions & { backend?: Backend };

export class Snapshot extends Tracked<SnapshotStatus> {
  readonly id: string;
  /** The very Volume object it was taken of. */
  readonly volume: Volume;
  readonly #registry: Registry;
  /** The agent's record as last heard: replies and pushes replace it, the getters read it. */
  #fields: SnapshotFields;

  /** @internal Made by the identity map only. */
  constructor(registry: Registry, volume: Volume, record: SnapshotRecord) {
    super(record.status);
    this.#registry = registry;
    this.id = record.id;
    this.volume = volume;
    this.#fields = pick(record, SNAPSHOT_FIELDS);
  }

  get name(): string | null {
    return this.#fields.name;
  }
  get description(): string | null {
    return this.#fields.description;
  }
  get volumeSize(): number {
    return this.#fields.volumeSize;
  }
  get createdAt(): string {
    return this.#fields.createdAt;
  }
  get updatedAt(): string {
    return this.#fields.updatedAt;
  }
  get location(): Location {
    return this.#fields.location;
  }
  /** The last failure, kept while the snapshot is in an error status. */
  get error(): ErrorInfo | null {
    return this.#fields.error;
  }

  get volumeId(): string {
    return this.volume.id;
  }

  /** @internal */
  applyRecord(record: SnapshotRecord): void {
    this.#fields = pick(record, SNAPSHOT_FIELDS);
    this.setStatus(record.status);
  }

  /** Removes it from `volume.snapshots`; the object shows status `deleted`. */
  async delete(options: CallOptions = {}): Promise<void> {
    await this.#registry.call('snapshot.delete', { id: this.id }, { ...options, origin: this });
    this.#registry.snapshotGone(this);
  }

  /** The new volume; this snapshot emits the copy's `progress`, as does the volume once the identity map holds it. */
  async createVolume({ backend, ...options }: NewVolumeOptions = {}): Promise<Volume> {
    const { args, call } = splitCall(options);
    if (backend && backend !== this.volume.backend) {
      const ticket = await this.#registry.call('transfer.open', { snapshotId: this.id });
      return backend.receiveCopy(ticket, args, { ...call, origin: this });
    }
    const record = await this.#registry.call('snapshot.createVolume', { id: this.id, ...args }, { ...call, origin: this });
    return this.#registry.volumeFrom(record, { fresh: true });
  }

  async refresh(): Promise<void> {
    try {
      this.#registry.snapshotFrom(await this.#registry.call('snapshot.get', { id: this.id }), this.volume);
    } catch (err) {
      if (err instanceof NotFoundError) this.#registry.snapshotGone(this);
      throw err;
    }
  }

  toDict(): SnapshotRecord {
    // A copy: what a caller does with the dict must not reach the live object.
    return structuredClone({
      id: this.id,
      backend: this.volume.backend.name,
      volumeId: this.volume.id,
      status: this.status,
      ...this.#fields,
    });
  }
  get json(): SnapshotJson {
    return { schemaVersion: SCHEMA_VERSION, kind: 'snapshot', ...this.toDict(), volume: this.volume.toDict() };
  }
  get jsons(): SerializedText<SnapshotJson> {
    return JSON.stringify(this.json);
  }
  /** Same as `json`: a snapshot's only relation, its volume, is already inlined there. */
  get dump(): SnapshotJson {
    return this.json;
  }
  get dumps(): SerializedText<SnapshotJson> {
    return this.jsons;
  }
}
