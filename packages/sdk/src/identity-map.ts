import {
  InvalidArgumentError,
  MAX_LIST_LIMIT,
  NotFoundError,
  TimeoutError,
  UnavailableError,
  type BackendInfo,
  type Change,
  type ChangePosition,
  type ConnectionRecord,
  type EventFrame,
  type OpArgs,
  type OpName,
  type OpResult,
  type SnapshotRecord,
  type VolumeListing,
  type VolumeRecord,
} from '@kindling/protocol';
import { Backend } from './backend.js';
import type { CallOptions } from './call-options.js';
import { ChangeCursor, readChanges } from './changes.js';
import { Following } from './following.js';
import { Connection } from './connection.js';
import type { Classes, Load, Origin, Registry, Resource } from './registry.js';
import { parseSerialized, type Serialized, type VolumeDump } from './serialization.js';
import { Snapshot } from './snapshot.js';
import { requestIdFor } from './ledger.js';
import { mapLimit } from './fleet/pool.js';
import { volumePages } from './paging.js';
import type { Transport } from './transport.js';
import { Volume } from './volume.js';

/** Up to this many held volumes are resynced by id; more, with a paged read of the whole agent. */
const RESYNC_BY_ID = 100;
/** By-id resync requests at once: well under the agent's per-connection limit on requests in flight. */
const RESYNC_CONCURRENCY = 16;

function byVolume<R extends { volumeId: string }>(records: readonly R[]): Map<string, R[]> {
  const groups = new Map<string, R[]>();
  for (const record of records) {
    const group = groups.get(record.volumeId);
    if (group) group.push(record);
    else groups.set(record.volumeId, [record]);
  }
  return groups;
}

/** Whether the live object's record is newer than a loaded one's. */
function newer(live: { updatedAt: string }, loaded: { updatedAt: string }): boolean {
  return Date.parse(live.updatedAt) > Date.parse(loaded.updatedAt);
}

/**
 * The identity map of one Agent connection: one object per id, updated in place from replies, pushes
 * and loads. Every way a record enters the SDK goes through here, which is what makes
 * `snap === [...vol.snapshots][0]` and `vol === snap.volume` hold. (The agent's per-socket state is
 * its `Session`; this is the client's.)
 */
export class IdentityMap implements Registry {
  readonly volumes = new Map<string, Volume>();
  readonly snapshots = new Map<string, Snapshot>();
  readonly connections = new Map<string, Connection>();
  private readonly backends = new Map<string, Backend>();
  /** Volumes whose snapshots and connections this map holds in full, so refresh() reloads them. */
  private readonly withRelations = new WeakSet<Volume>();
  private readonly following = new Following();
  /**
   * Ids this session saw deleted, to the object that showed it, so that a load never brings one back
   * (nor makes a second object for it). Weak: an object nobody holds may go; a load then gets a new
   * one that shows `deleted` and joins nothing.
   */
  readonly #deleted = new Map<string, WeakRef<Resource>>();
  /** Where this map is in the agent's change sequence, so a reconnect reads only what changed. */
  readonly #changes = new ChangeCursor();
  #begun = false;

  constructor(
    private readonly transport: Transport,
    /** The Agent this identity map belongs to: every object knows its host through its backend. */
    readonly agent: Classes['Agent'],
    /** `follow: 'held'`: the agent pushes only what concerns volumes this map holds (events.follow). */
    private readonly followHeld = false,
  ) {}

  /** The first hello: where the map starts in the change sequence, and the narrowing of pushes asked for. */
  async begin(at: ChangePosition | undefined): Promise<void> {
    if (this.#begun) return;
    this.#begun = true;
    this.#changes.begin(at);
    if (this.followHeld) await this.#narrow();
  }

  /** Asks the agent for pushes of the volumes held (in calls of at most a page of ids) and of those it sends later. */
  async #narrow(): Promise<void> {
    const ids = [...this.volumes.keys()];
    for (let at = 0; at === 0 || at < ids.length; at += MAX_LIST_LIMIT) {
      await this.call('events.follow', { replied: true, volumeIds: ids.slice(at, at + MAX_LIST_LIMIT) });
    }
  }

  /**
   * One call. A mutating one gets its requestId here (unless the caller gives one), so that pushes
   * naming it (progress) reach `origin`, the object the call was made on, and `onProgress`.
   */
  async call<O extends OpName>(op: O, args: OpArgs<O>, { origin, onProgress, requestId, timeoutMs }: CallOptions & { origin?: Origin } = {}): Promise<OpResult<O>> {
    const id = requestIdFor(op, requestId);
    if (id === undefined) return this.transport.request(op, args, { timeoutMs });
    this.following.start(id, op, origin, onProgress);
    let unknownOutcome = false;
    try {
      return await this.transport.request(op, args, { requestId: id, timeoutMs });
    } catch (err) {
      unknownOutcome = err instanceof TimeoutError || err instanceof UnavailableError;
      throw err;
    } finally {
      this.following.end(id, unknownOutcome);
    }
  }

  /** The reply to a creating call that had timed out: what it made joins the map (a retry by its requestId gives this object). */
  adoptLate({ op, requestId, result }: { op: OpName; requestId: string; result: unknown }): void {
    this.following.settled(requestId);
    if (op !== 'snapshot.create') {
      this.volumeFrom(result as VolumeRecord, { fresh: true });
      return;
    }
    const record = result as SnapshotRecord;
    const volume = this.volumes.get(record.volumeId);
    if (volume) this.snapshotFrom(record, volume);
  }

  /** From each hello: the configured backends, keeping the Backend objects (and promoting stubs) by name. */
  adoptBackends(infos: readonly BackendInfo[]): void {
    const listed = new Set(infos.map((info) => info.name));
    for (const backend of this.backends.values()) {
      if (!listed.has(backend.name)) backend.applyHello(null);
    }
    for (const { name, driver } of infos) {
      const known = this.backends.get(name);
      if (known) known.applyHello(driver);
      else this.backends.set(name, new Backend(this, name, driver));
    }
  }

  configuredBackend(name: string): Backend {
    const backend = this.backends.get(name);
    if (!backend?.configured) {
      throw new NotFoundError(`no backend named ${name} on this agent`, { backend: name, configured: this.configuredBackends().map((b) => b.name) });
    }
    return backend;
  }

  configuredBackends(): Backend[] {
    return [...this.backends.values()].filter((b) => b.configured);
  }

  /** A name this agent lacks (JSON from elsewhere, cinderlib's fail_on_missing_backend=False) becomes a stub. */
  private backendNamed(name: string): Backend {
    let backend = this.backends.get(name);
    if (!backend) {
      backend = new Backend(this, name, null);
      this.backends.set(name, backend);
    }
    return backend;
  }

  /** `fresh`: the agent just made it, so it is known to have no snapshots or connections yet. */
  volumeFrom(record: VolumeRecord, { fresh = false } = {}): Volume {
    let volume = this.volumes.get(record.id);
    if (volume) {
      if (volume.backend.name !== record.backend) volume.rehome(this.backendNamed(record.backend));
      volume.applyRecord(record);
    } else {
      volume = new Volume(this, this.backendNamed(record.backend), record);
      this.volumes.set(record.id, volume);
    }
    if (fresh) this.withRelations.add(volume);
    return volume;
  }

  snapshotFrom(record: SnapshotRecord, volume: Volume): Snapshot {
    let snapshot = this.snapshots.get(record.id);
    if (snapshot) snapshot.applyRecord(record);
    else {
      snapshot = new Snapshot(this, volume, record);
      this.snapshots.set(record.id, snapshot);
    }
    volume.snapshots.add(snapshot);
    return snapshot;
  }

  connectionFrom(record: ConnectionRecord, volume: Volume): Connection {
    let connection = this.connections.get(record.id);
    if (connection) connection.applyRecord(record);
    else {
      connection = new Connection(this, volume, record);
      this.connections.set(record.id, connection);
    }
    if (!volume.connections.includes(connection)) volume.connections.push(connection);
    return connection;
  }

  /** A `volume.list` answer: each volume with its relations in full. */
  listing({ volumes, snapshots, connections }: VolumeListing): Volume[] {
    const snapshotsOf = byVolume(snapshots);
    const connectionsOf = byVolume(connections);
    return volumes.map((record) => {
      const volume = this.volumeFrom(record);
      this.syncRelations(volume, snapshotsOf.get(record.id) ?? [], connectionsOf.get(record.id) ?? []);
      return volume;
    });
  }

  /**
   * After a reconnect (`now`: the new hello's position): brings every volume this map holds up to date,
   * in work proportional to what changed: the changes after the map's position in the agent's change
   * sequence (newest states, tombstones for what went). Only when the agent's retained history does not
   * reach back (or it is another index: a wiped data dir, an agent before `changes.list`), the held
   * volumes are read again.
   */
  async resync(now: ChangePosition | undefined): Promise<void> {
    await this.#changes.resync(async () => {
      if (this.followHeld) await this.#narrow();
      const before = [...this.volumes.values()].filter((v) => v.backend.configured);
      const from = this.#changes.position;
      if (before.length === 0) return now ?? null;
      if (from && now?.epoch === from.epoch) {
        const reached = await readChanges((args) => this.call('changes.list', args), from, (change) => this.#applyChange(change));
        if (reached) return reached;
      }
      await this.#reread(before);
      return now ?? null;
    });
  }

  /** One change of a resync: a newest state as its push would bring it; a tombstone ends what is held. */
  #applyChange(change: Change): void {
    if (change.record === null) {
      const gone = this.volumes.get(change.id) ?? this.snapshots.get(change.id) ?? this.connections.get(change.id);
      if (gone instanceof Volume) this.volumeGone(gone);
      else if (gone instanceof Snapshot) this.snapshotGone(gone);
      else if (gone) this.#detached(gone);
      return;
    }
    if (change.kind === 'volume') this.applyEvent({ event: 'volume', resource: change.record });
    else if (change.kind === 'snapshot') this.applyEvent({ event: 'snapshot', resource: change.record });
    else this.applyEvent({ event: 'connection', resource: change.record });
  }

  /**
   * Reads the held volumes again, in work proportional to what the map holds. A few volumes are asked
   * for by id (a client following ten volumes of an agent with 100,000 reads ten); more, with a paged
   * read of the whole agent, never one unfiltered frame. One of this agent's backends that the agent no
   * longer lists is gone; stubs (loaded for a backend the agent lacks) are left as they are. Only volumes
   * held before can be gone: one that events brought in meanwhile may sort into a page already read.
   */
  async #reread(before: Volume[]): Promise<void> {
    const listed = new Set<string>();
    const held = (id: string) => this.volumes.has(id);
    const take = (page: VolumeListing): void => {
      for (const v of page.volumes) listed.add(v.id);
      this.listing({
        volumes: page.volumes.filter((v) => held(v.id)),
        snapshots: page.snapshots.filter((s) => held(s.volumeId)),
        connections: page.connections.filter((c) => held(c.volumeId)),
        nextCursor: null,
      });
    };
    if (before.length <= RESYNC_BY_ID) {
      await mapLimit(before, RESYNC_CONCURRENCY, async (v) => take(await this.call('volume.list', { id: v.id, limit: 1 })));
    } else {
      for await (const page of volumePages((args) => this.call('volume.list', args), {})) take(page);
    }
    for (const volume of before) if (!listed.has(volume.id) && held(volume.id)) this.volumeGone(volume);
  }

  hasRelations(volume: Volume): boolean {
    return this.withRelations.has(volume);
  }

  syncRelations(volume: Volume, snapshots: SnapshotRecord[], connections: ConnectionRecord[]): void {
    const snapshotIds = new Set(snapshots.map((r) => r.id));
    for (const snapshot of [...volume.snapshots]) if (!snapshotIds.has(snapshot.id)) this.snapshotGone(snapshot);
    for (const record of snapshots) this.snapshotFrom(record, volume);
    const connectionIds = new Set(connections.map((r) => r.id));
    for (const connection of [...volume.connections]) if (!connectionIds.has(connection.id)) this.#detached(connection);
    for (const record of connections) this.connectionFrom(record, volume);
    this.withRelations.add(volume);
  }

  volumeGone(volume: Volume): void {
    for (const snapshot of [...volume.snapshots]) this.snapshotGone(snapshot);
    for (const connection of [...volume.connections]) this.#detached(connection);
    this.volumes.delete(volume.id);
    this.#deleted.set(volume.id, new WeakRef(volume));
    volume.applyRecord({ ...volume.toDict(), status: 'deleted' });
  }

  snapshotGone(snapshot: Snapshot): void {
    this.snapshots.delete(snapshot.id);
    this.#deleted.set(snapshot.id, new WeakRef(snapshot));
    snapshot.volume.snapshots.delete(snapshot);
    snapshot.applyRecord({ ...snapshot.toDict(), status: 'deleted' });
  }

  connectionEnded(record: ConnectionRecord): void {
    const connection = this.connections.get(record.id);
    if (connection) this.#leave(connection, record);
  }

  /** Its volume went, or the agent's list of the volume's connections no longer has it: it is no longer attached. */
  #detached(connection: Connection): void {
    this.#leave(connection, { ...connection.toDict(), attached: false });
  }

  #leave(connection: Connection, record: ConnectionRecord): void {
    this.connections.delete(connection.id);
    this.#deleted.set(connection.id, new WeakRef(connection));
    const list = connection.volume.connections;
    const at = list.indexOf(connection);
    if (at >= 0) list.splice(at, 1);
    connection.applyRecord(record);
  }

  /**
   * Pushes about resources this map does not hold are dropped, unless their volume is held or one of
   * this map's calls is making it.
   */
  applyEvent(frame: EventFrame): void {
    this.#changes.pushed(frame.seq);
    switch (frame.event) {
      case 'volume': {
        const record = frame.resource;
        const volume = this.volumes.get(record.id);
        if (volume && record.status === 'deleted') this.volumeGone(volume);
        else if (volume) volume.applyRecord(record);
        else if (record.status !== 'deleted' && this.following.makes(record.id)) this.volumeFrom(record, { fresh: true });
        return;
      }
      case 'snapshot': {
        const record = frame.resource;
        const snapshot = this.snapshots.get(record.id);
        if (record.status === 'deleted') {
          if (snapshot) this.snapshotGone(snapshot);
          return;
        }
        const volume = this.volumes.get(record.volumeId);
        if (volume) this.snapshotFrom(record, volume);
        return;
      }
      case 'connection': {
        const volume = this.volumes.get(frame.resource.volumeId);
        if (volume) this.connectionFrom(frame.resource, volume);
        return;
      }
      case 'connection.deleted': {
        this.connectionEnded(frame.resource);
        return;
      }
      case 'capacity':
        return; // nothing cached: stats are asked for
      case 'progress': {
        const progress = frame.resource;
        this.following.progress(progress, progress.kind === 'volume' ? this.volumes.get(progress.id) : this.snapshots.get(progress.id));
        return;
      }
    }
  }

  /**
   * `agent.load` / `backend.load`: live objects from serialized ones, without a round trip. One object in,
   * one out; an array in, an array out. `backend` restricts it to that backend's resources.
   */
  loader(backend?: string): Load {
    // One implementation behind Load's overloads, which only type the result by the input.
    return ((data: unknown) => this.#load(data, backend)) as Load;
  }

  #load(data: unknown, backend: string | undefined): Resource | Resource[] {
    const { items, many } = parseSerialized(data);
    const foreign = backend === undefined ? undefined : items.find((item) => item.backend !== backend);
    if (foreign) throw new InvalidArgumentError(`${foreign.kind} ${foreign.id} is of backend ${foreign.backend}, not ${backend}`);
    const loaded = this.materialize(items);
    return many ? loaded : (loaded[0] as Resource);
  }

  /**
   * Adds or updates, never removes: a dump may be older than what this map holds. Stale JSON never wins:
   * a live object with a newer `updatedAt` is kept as it is (a live connection, which has none, too), and
   * what this session saw deleted stays deleted.
   */
  private materialize(items: readonly Serialized[]): Resource[] {
    return items.map((item): Resource => {
      switch (item.kind) {
        case 'volume': {
          const live = this.volumes.get(item.id);
          const volume = this.#loadVolume(item);
          if ('snapshots' in item && this.volumes.has(volume.id)) {
            for (const record of item.snapshots) this.#loadSnapshot(record, volume);
            for (const record of item.connections) this.#loadConnection(record, volume);
            if (!live || !newer(live, item)) this.withRelations.add(volume);
          }
          return volume;
        }
        case 'snapshot':
          return this.#loadSnapshot(item, this.#loadVolume(item.volume));
        case 'connection':
          return this.#loadConnection(item, this.#loadVolume(item.volume));
      }
    });
  }

  /** The object the session saw deleted under this id (`orphan()` when nobody holds it any more), else undefined. */
  #seenDeleted<T extends Resource>(id: string, orphan: () => T): T | undefined {
    const ref = this.#deleted.get(id);
    if (!ref) return undefined;
    return (ref.deref() as T | undefined) ?? orphan();
  }

  #loadVolume(record: VolumeRecord): Volume {
    const deleted = { ...record, status: 'deleted' as const };
    const gone = this.#seenDeleted(record.id, () => new Volume(this, this.backendNamed(record.backend), deleted));
    if (gone) return gone;
    const live = this.volumes.get(record.id);
    return live && newer(live, record) ? live : this.volumeFrom(record);
  }

  /** Of a volume the session saw deleted, the snapshot is gone too (a volume with snapshots cannot be deleted). */
  #loadSnapshot(record: SnapshotRecord, volume: Volume): Snapshot {
    const orphan = (): Snapshot => new Snapshot(this, volume, { ...record, status: 'deleted' });
    const gone = this.#seenDeleted(record.id, orphan) ?? (this.volumes.has(volume.id) ? undefined : orphan());
    if (gone) return gone;
    const live = this.snapshots.get(record.id);
    return live && newer(live, record) ? live : this.snapshotFrom(record, volume);
  }

  #loadConnection(record: ConnectionRecord, volume: Volume): Connection {
    const orphan = (): Connection => new Connection(this, volume, { ...record, attached: false });
    const gone = this.#seenDeleted(record.id, orphan) ?? (this.volumes.has(volume.id) ? undefined : orphan());
    return gone ?? this.connections.get(record.id) ?? this.connectionFrom(record, volume);
  }

  dump(): VolumeDump[] {
    return [...this.volumes.values()].map((volume) => volume.dump);
  }
}
