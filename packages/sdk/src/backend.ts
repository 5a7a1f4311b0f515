import {
  NotFoundError,
  type BackendStats,
  type TransferTicket,
  type Capabilities,
  type ConnectorInfo,
  type DriverName,
  type OpArgs,
  type SnapshotRecord,
} from '@kindling/protocol';
import { splitCall, type CallOptions } from './call-options.js';
import { allPages, collect, volumePages } from './paging.js';
import type { Agent, Load, Origin, Registry, Snapshot, Volume } from './registry.js';

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

/** One page of `backend.volumePage`: `nextCursor` goes into the next call, null at the end. */
export interface VolumePage {
  volumes: Volume[];
  nextCursor: string | null;
}

/** One page of `backend.snapshotPage`: the agent's records as they are (no volume loaded for each). */
export interface SnapshotRecordPage {
  snapshots: SnapshotRecord[];
  nextCursor: string | null;
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

  /**
   * One page of this backend's volumes, in the agent's order, for a caller that hands the paging on
   * (CSI's ListVolumes): at most `limit` (1-1000), after `cursor` (an earlier page's `nextCursor`).
   */
  async volumePage({ limit, cursor, volumeId, volumeName }: VolumesFilter & { limit: number; cursor?: string }): Promise<VolumePage> {
    const page = await this.#registry.call('volume.list', { backend: this.name, id: volumeId, name: volumeName, limit, ...(cursor === undefined ? {} : { cursor }) });
    return { volumes: this.#registry.listing(page), nextCursor: page.nextCursor };
  }

  /**
   * One page of this backend's snapshot records, in the agent's order, for a caller that only presents
   * them (CSI's ListSnapshots): records, not Snapshot objects, since an object needs its volume loaded,
   * one more round trip per volume.
   */
  async snapshotPage({ limit, cursor }: { limit: number; cursor?: string }): Promise<SnapshotRecordPage> {
    const page = await this.#registry.call('snapshot.list', { backend: this.name, limit, ...(cursor === undefined ? {} : { cursor }) });
    // The bare-array form answers only a request without `limit`.
    return Array.isArray(page) ? { snapshots: page, nextCursor: null } : page;
  }

  /**
   * This backend's snapshot with this id, or those named `snapshotName` (of any volume), each with its
   * volume loaded: the agent filters, so a check by name costs a small reply, not a listing of every volume.
   */
  async snapshotsFiltered({ snapshotId, snapshotName }: { snapshotId?: string; snapshotName?: string }): Promise<Snapshot[]> {
    let records: SnapshotRecord[];
    if (snapshotId !== undefined) {
      const record = await this.#registry.call('snapshot.get', { id: snapshotId }).catch((err: unknown) => {
        if (err instanceof NotFoundError) return null;
        throw err;
      });
      records = record && record.backend === this.name && (snapshotName === undefined || record.name === snapshotName) ? [record] : [];
    } else {
      records = await allPages('snapshots', (paging) => this.#registry.call('snapshot.list', { backend: this.name, name: snapshotName, ...paging }));
    }
    const ids = new Set(records.map((r) => r.id));
    const found: Snapshot[] = [];
    for (const volumeId of new Set(records.map((r) => r.volumeId))) {
      const [volume] = await this.volumesFiltered({ volumeId });
      for (const snapshot of volume?.snapshots ?? []) if (ids.has(snapshot.id)) found.push(snapshot);
    }
    return found;
  }

  async capabilities(): Promise<Capabilities> {
    return this.#registry.call('backend.capabilities', { backend: this.name });
  }

  /** Rejects with InvalidArgumentError when the connector lacks what this backend's protocol needs. */
  async validateConnector(connectorInfo: ConnectorInfo): Promise<void> {
    await this.#registry.call('backend.validateConnector', { backend: this.name, connector: connectorInfo });
  }

}
