import type { ConnectionInfo, ConnectionRecord, ConnectorInfo } from '@kindling/protocol';
import { CONNECTION_FIELDS, SCHEMA_VERSION, pick, type ConnectionJson, type SerializedText } from './serialization.js';
import type { Registry, Volume } from './registry.js';

declare module './registry.js' {
  interface Classes {
    Connection: InstanceType<typeof Connection>;
  }
}
type ConnectionFields = Pick<ConnectionRecord, (typeof CONNECTION_FIELDS)[number]>;

/** A volume exported to a host: the agent's own (`vol.attach()`, with a local `path`) or another's (`vol.connect()`). */
export class Connection {
  readonly id: string;
  readonly volume: Volume;
  readonly #registry: Registry;
  /** The agent's record as last heard: replies and pushes replace it, the getters read it. */
  #fields: ConnectionFields;

  /** @internal Made by the identity map only. */
  constructor(registry: Registry, volume: Volume, record: ConnectionRecord) {
    this.#registry = registry;
    this.id = record.id;
    this.volume = volume;
    this.#fields = pick(record, CONNECTION_FIELDS);
  }

  get connectorInfo(): ConnectorInfo {
    return this.#fields.connectorInfo;
  }
  get connectionInfo(): ConnectionInfo {
    return this.#fields.connectionInfo;
  }
  /** The device or file on the agent's host, for a local attach. */
  get path(): string | null {
    return this.#fields.path;
  }
  get attached(): boolean {
    return this.#fields.attached;
  }
  get createdAt(): string {
    return this.#fields.createdAt;
  }

  get volumeId(): string {
    return this.volume.id;
  }

  /** @internal */
  applyRecord(record: ConnectionRecord): void {
    this.#fields = pick(record, CONNECTION_FIELDS);
  }

  async disconnect(): Promise<void> {
    const { volume, connection } = await this.#registry.call('connection.delete', { id: this.id });
    this.#registry.volumeFrom(volume);
    this.#registry.connectionEnded(connection);
  }

  /** Tells the host side about a grown volume; resolves with the size it now sees, in bytes. */
  async extend(): Promise<number> {
    return (await this.#registry.call('connection.extend', { id: this.id })).sizeBytes;
  }

  toDict(): ConnectionRecord {
    // A copy: what a caller does with the dict must not reach the live object.
    return structuredClone({ id: this.id, backend: this.volume.backend.name, volumeId: this.volume.id, ...this.#fields });
  }
  get json(): ConnectionJson {
    return { schemaVersion: SCHEMA_VERSION, kind: 'connection', ...this.toDict(), volume: this.volume.toDict() };
  }
  get jsons(): SerializedText<ConnectionJson> {
    return JSON.stringify(this.json);
  }
  /** Same as `json`: a connection's only relation, its volume, is already inlined there. */
  get dump(): ConnectionJson {
    return this.json;
  }
  get dumps(): SerializedText<ConnectionJson> {
    return this.jsons;
  }
}
