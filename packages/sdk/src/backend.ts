import {
  type BackendStats,
  type TransferTicket,
  type Capabilities,
  type ConnectorInfo,
  type DriverName,
  type OpArgs,
} from '@kindling/protocol';
import { splitCall, type CallOptions } from './call-options.js';
import { collect, volumePages } from './paging.js';
import type { Agent, Load, Origin, Registry, Volume } from './registry.js';

declare module './registry.js' {
  interface Classes {
    Backend: InstanceType<typeof Backend>;
  }
}

export type CreateVolumeOptions = Omit<OpArgs<'volume.create'>, 'backend'> & CallOptions;
/** The new volume's own fields when it is copied from elsewhere (size defaults to the source's). */
export type CopyFields = Omit<OpArgs<'volume.copyFrom'>, 'backend' | 'source'>;
export interface VolumesFilter {
  volumeId?: string;
  volumeName?: string;
}

/** A storage backend as the agent configured it, by name. */
export class Backend {
  readonly name: string;
  /** As `agent.load`, for resources of this backend only (InvalidArgumentError otherwise, nothing loaded). */
  readonly load: Load;
  readonly #registry: Registry;
  #driver: DriverName | null;
  #configured: boolean;

  /** @internal Made by the identity map only. */
  constructor(registry: Registry, name: string, driver: DriverName | null) {
    this.#registry = registry;
    this.name = name;
    this.load = registry.loader(name);
    this.#driver = driver;
    this.#configured = driver !== null;
  }

  /** null only for a stub: a backend named by loaded JSON that this agent does not have. */
  get driver(): DriverName | null {
    return this.#driver;
  }
  /** False for a stub (or one the agent no longer lists); its objects can be serialized, but calls for them get the agent's NOT_FOUND. */
  get configured(): boolean {
    return this.#configured;
  }

  /** @internal From each hello: the agent lists it with this driver, or (null) no longer lists it, which keeps the driver last known. */
  applyHello(driver: DriverName | null): void {
    if (driver !== null) this.#driver = driver;
    this.#configured = driver !== null;
  }

  /** The agent (host) this backend lives on: `vol.backend.agent.hostId`. */
  get agent(): Agent {
    return this.#registry.agent;
  }

  async stats({ refresh = false }: { refresh?: boolean } = {}): Promise<BackendStats> {
    return this.#registry.call('backend.stats', { backend: this.name, refresh });
  }

  /** Resolves once the volume is `available`. */
  async createVolume(options: CreateVolumeOptions): Promise<Volume> {
    const { args, call } = splitCall(options);
    const record = await this.#registry.call('volume.create', { backend: this.name, ...args }, call);
    return this.#registry.volumeFrom(record, { fresh: true });
  }

  /**
   * @internal A copy from another backend (`vol.clone({ backend })`, `snap.createVolume({ backend })`):
   * this backend's agent pulls what the source agent's ticket opens into a new volume here.
   */
  async receiveCopy(ticket: TransferTicket, fields: CopyFields, call: CallOptions & { origin?: Origin }): Promise<Volume> {
    const source = { url: ticket.url, credential: ticket.credential, sizeBytes: ticket.sizeBytes };
    const record = await this.#registry.call('volume.copyFrom', { backend: this.name, source, ...fields }, call);
    return this.#registry.volumeFrom(record, { fresh: true });
  }

  /** Every volume of this backend, each with its snapshots and connections loaded (read page by page). */
  async volumes(): Promise<Volume[]> {
    return collect(this.iterVolumes());
  }

  async volumesFiltered(filter: VolumesFilter = {}): Promise<Volume[]> {
    return collect(this.iterVolumes(filter));
  }

  /**
   * The streaming form of `volumes()` / `volumesFiltered()`: `for await (const v of backend.iterVolumes())`
   * yields each volume (with its relations) as its page arrives, so a caller holds one page at a time.
   */
  async *iterVolumes({ volumeId, volumeName }: VolumesFilter = {}): AsyncGenerator<Volume> {
    const list = (args: OpArgs<'volume.list'>) => this.#registry.call('volume.list', args);
    for await (const page of volumePages(list, { backend: this.name, id: volumeId, name: volumeName })) {
      yield* this.#registry.listing(page);
    }
  }

  async capabilities(): Promise<Capabilities> {
    return this.#registry.call('backend.capabilities', { backend: this.name });
  }

  /** Rejects with InvalidArgumentError when the connector lacks what this backend's protocol needs. */
  async validateConnector(connectorInfo: ConnectorInfo): Promise<void> {
    await this.#registry.call('backend.validateConnector', { backend: this.name, connector: connectorInfo });
  }

}
