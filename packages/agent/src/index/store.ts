import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import type { ConnectionRecord, GroupSnapshotRecord, SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { charged, requestCost } from '../cost.js';
import { ChangeLog, type ChangeEntry, type Changed } from './changes.js';
import { keys, nameKey, prefixRange } from './keys.js';

const SCHEMA_VERSION = 1;

type Batch = ({ type: 'put'; key: string; value: unknown } | { type: 'del'; key: string })[];

/**
 * A client request's ledger entry (rpc/requests.ts), written in the same synced batch as the first
 * change its op makes: after a crash, the entry exists exactly when that change does.
 */
export interface RequestMark {
  requestId: string;
  entry: unknown;
}

const volumeChange = (record: { id: string }): Changed => ({ kind: 'volume', id: record.id });
/** A snapshot or connection change, with its volume's when the batch writes that too. */
const partOf = (kind: 'snapshot' | 'connection', record: { id: string; volumeId: string }, volume?: { id: string }): Changed[] => [
  { kind, id: record.id, volumeId: record.volumeId },
  ...(volume ? [volumeChange(volume)] : []),
];

const statusKey = (record: { backend: string; status: string }): string => `${record.backend}:${record.status}`;

/**
 * One secondary index: a key (backend, name, volume id) to the ids under it. Most keys hold one id (a
 * name, a volume's single snapshot), kept as the id itself: a Set per key cost ~200 bytes a volume.
 */
class Postings {
  private readonly map = new Map<string, string | Set<string>>();
  add(key: string, id: string): void {
    const ids = this.map.get(key);
    if (ids === undefined || ids === id) this.map.set(key, id);
    else if (typeof ids === 'string') this.map.set(key, new Set([ids, id]));
    else ids.add(id);
  }
  remove(key: string, id: string): void {
    const ids = this.map.get(key);
    if (ids === id) this.map.delete(key);
    else if (typeof ids === 'object') {
      ids.delete(id);
      if (ids.size === 1) this.map.set(key, ids.values().next().value as string);
    }
  }
  ids(key: string): Iterable<string> {
    const ids = this.map.get(key);
    return ids === undefined ? [] : typeof ids === 'string' ? [ids] : ids;
  }
  /** The ids under every key that starts with `prefix`. */
  *idsUnder(prefix: string): Iterable<string> {
    for (const key of this.map.keys()) if (key.startsWith(prefix)) yield* this.ids(key);
  }
}

/** A running count per key (a backend), kept as records change: a count is read without a walk. */
class Tally {
  private readonly map = new Map<string, number>();
  add(key: string, by: 1 | -1): void {
    const n = (this.map.get(key) ?? 0) + by;
    if (n === 0) this.map.delete(key);
    else this.map.set(key, n);
  }
  of(key: string): number {
    return this.map.get(key) ?? 0;
  }
}

/** Records read from LevelDB at once: one native call per batch, not per record. */
const LOAD_BATCH = 1000;

/**
 * The agent's index. LevelDB is the durable truth: every change is one synced batch of a record and
 * its secondary index keys. At open both are read into memory, and every write goes through to both,
 * so reads (by id, backend, name, owning volume) never wait on disk: `volume.list` of 1,000 volumes
 * with their snapshots is a walk over maps, not 2,000 range scans.
 */
export class IndexStore {
  private readonly volumes = new Map<string, VolumeRecord>();
  private readonly snapshots = new Map<string, SnapshotRecord>();
  private readonly connections = new Map<string, ConnectionRecord>();
  private readonly byName = new Postings();
  private readonly snapshotsByVolume = new Postings();
  private readonly connectionsByVolume = new Postings();
  /**
   * `backend:status` to ids, in memory only: recovery finds what was in flight without reading every
   * record, and a backend's volumes are its statuses' (no second set of every id).
   */
  private readonly volumesByStatus = new Postings();
  private readonly snapshotsByStatus = new Postings();
  /** Group snapshot records (few: each holds only its members' ids). */
  private readonly groups = new Map<string, GroupSnapshotRecord>();
  /** Records per backend, for its stats (pushed after every change). */
  private readonly volumeCount = new Tally();
  private readonly snapshotCount = new Tally();

  private constructor(
    private readonly db: Level<string, unknown>,
    /** The change sequence (changes.ts): numbered in the batches below, read by `changes.list`. */
    readonly changes: ChangeLog,
  ) {}

  /** `retainChanges`: how many of the last changes `changes.list` can list (tests make it small). */
  static async open(dir: string, { retainChanges }: { retainChanges?: number } = {}): Promise<IndexStore> {
    await mkdir(dir, { recursive: true });
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new Error(`the index at ${dir} is locked by another process (is an agent running on this data dir?)`);
      }
      throw err;
    }
    // A separate step from load(): a few keys, not a scan.
    const store = new IndexStore(db, await ChangeLog.open(db, retainChanges));
    await store.load();
    await store.each<GroupSnapshotRecord>('grp:', (group) => store.groups.set(group.id, group));
    return store;
  }

  /**
   * Reads every record into memory. The secondary keys are not read: each is derivable from its record
   * (written in the same batch), and deriving them reuses the record's id strings instead of a copy per key.
   */
  private async load(): Promise<void> {
    const version = await this.db.get(keys.meta('schema'));
    if (version === undefined) await this.db.put(keys.meta('schema'), SCHEMA_VERSION, { sync: true });
    else if (version !== SCHEMA_VERSION) throw new Error(`index schema ${String(version)} is not ${SCHEMA_VERSION}`);
    await this.each<VolumeRecord>('vol:', (v) => {
      this.setVolume(v);
      if (v.name !== null) this.byName.add(nameKey(v.backend, v.name), v.id);
    });
    await this.each<SnapshotRecord>('snap:', (snap) => {
      this.setSnapshot(snap);
      this.snapshotsByVolume.add(snap.volumeId, snap.id);
    });
    await this.each<ConnectionRecord>('conn:', (conn) => {
      this.connections.set(conn.id, conn);
      this.connectionsByVolume.add(conn.volumeId, conn.id);
    });
  }

  /** Each record under `prefix`, read in batches: an await per record cost twice as long at 100,000. */
  private async each<T>(prefix: string, take: (record: T) => void): Promise<void> {
    const iterator = this.db.iterator<string, T>({ ...prefixRange(prefix), keys: false, valueEncoding: 'json' });
    try {
      for (let batch = await iterator.nextv(LOAD_BATCH); batch.length > 0; batch = await iterator.nextv(LOAD_BATCH)) {
        for (const [, record] of batch) take(record);
      }
    } finally {
      await iterator.close();
    }
  }

  /**
   * Closes the database. `last` meta entries go first, in one batch that is not synced: a clean stop's
   * marker (services.ts), which costs no fsync; every write before it was synced or is not needed after
   * a crash, so if a host crash loses it the next start only scans as after a kill.
   */
  async close(last?: Record<string, unknown>): Promise<void> {
    if (last) await this.db.batch(Object.entries(last).map(([name, value]) => ({ type: 'put' as const, key: keys.meta(name), value })));
    await this.db.close();
  }

  /** One synced batch: the change, its numbers in the change sequence, and the request's mark. */
  private async write(batch: Batch, changed: Changed[], mark?: RequestMark): Promise<void> {
    if (mark) batch.push({ type: 'put', key: keys.request(mark.requestId), value: mark.entry });
    const settle = this.changes.record(batch, changed);
    try {
      await this.synced(() => this.db.batch(batch, { sync: true }));
    } catch (err) {
      settle(false);
      throw err;
    }
    settle(true);
  }

  /** Retained changes after `since`, in sequence order (the change log's; the records are read from memory). */
  changesAfter(since: number): AsyncGenerator<ChangeEntry> {
    return this.changes.after(since);
  }

  /** Every synced write goes through here, so the bench can count them per request (cost.ts). */
  private synced(write: () => Promise<void>): Promise<void> {
    return charged('index', 'syncedBatches', write);
  }

  getVolume(id: string): VolumeRecord | undefined {
    return this.volumes.get(id);
  }
  getSnapshot(id: string): SnapshotRecord | undefined {
    return this.snapshots.get(id);
  }
  getConnection(id: string): ConnectionRecord | undefined {
    return this.connections.get(id);
  }

  allVolumes(): IterableIterator<VolumeRecord> {
    return this.volumes.values();
  }
  allSnapshots(): IterableIterator<SnapshotRecord> {
    return this.snapshots.values();
  }

  /**
   * Ids in key order after `after`: every volume, one backend's volumes, or every snapshot. The stable
   * order list pages follow, read lazily from LevelDB's sorted keys so a page costs its size.
   */
  async *idsAfter(of: 'volume' | 'snapshot' | { backend: string }, after: string | undefined): AsyncGenerator<string> {
    const prefix = of === 'volume' ? 'vol:' : of === 'snapshot' ? 'snap:' : `idx:backend:${of.backend}:`;
    const { lt } = prefixRange(prefix);
    const from = after === undefined ? { gte: prefix } : { gt: prefix + after };
    for await (const key of this.db.keys({ ...from, lt })) yield key.slice(prefix.length);
  }

  /** How many volumes and snapshots a backend holds, whatever their status. */
  countOf(backend: string): { volumes: number; snapshots: number } {
    return { volumes: this.volumeCount.of(backend), snapshots: this.snapshotCount.of(backend) };
  }

  /** A backend's volumes in any of `statuses`. */
  volumesInStatus(backend: string, statuses: readonly string[]): VolumeRecord[] {
    return statuses.flatMap((status) => this.pick(this.volumes, this.volumesByStatus.ids(`${backend}:${status}`)));
  }
  /** A backend's snapshots in any of `statuses`. */
  snapshotsInStatus(backend: string, statuses: readonly string[]): SnapshotRecord[] {
    return statuses.flatMap((status) => this.pick(this.snapshots, this.snapshotsByStatus.ids(`${backend}:${status}`)));
  }

  // Every change of a record in memory goes through these, so its status postings follow it.
  private setVolume(record: VolumeRecord): void {
    this.dropVolume(record.id);
    this.volumes.set(record.id, record);
    this.volumesByStatus.add(statusKey(record), record.id);
    this.volumeCount.add(record.backend, 1);
  }
  private dropVolume(id: string): void {
    const old = this.volumes.get(id);
    if (old) {
      this.volumesByStatus.remove(statusKey(old), id);
      this.volumeCount.add(old.backend, -1);
    }
    this.volumes.delete(id);
  }
  private setSnapshot(record: SnapshotRecord): void {
    this.dropSnapshot(record.id);
    this.snapshots.set(record.id, record);
    this.snapshotsByStatus.add(statusKey(record), record.id);
    this.snapshotCount.add(record.backend, 1);
  }
  private dropSnapshot(id: string): void {
    const old = this.snapshots.get(id);
    if (old) {
      this.snapshotsByStatus.remove(statusKey(old), id);
      this.snapshotCount.add(old.backend, -1);
    }
    this.snapshots.delete(id);
  }

  private pick<T>(map: Map<string, T>, ids: Iterable<string>): T[] {
    const out: T[] = [];
    for (const id of ids) {
      const record = map.get(id);
      if (record) out.push(record);
    }
    return out;
  }

  volumesOfBackend(backend: string): VolumeRecord[] {
    return this.pick(this.volumes, this.volumesByStatus.idsUnder(`${backend}:`));
  }
  volumesNamed(backend: string, name: string): VolumeRecord[] {
    return this.pick(this.volumes, this.byName.ids(nameKey(backend, name)));
  }
  snapshotsOf(volumeId: string): SnapshotRecord[] {
    return this.pick(this.snapshots, this.snapshotsByVolume.ids(volumeId));
  }
  connectionsOf(volumeId: string): ConnectionRecord[] {
    return this.pick(this.connections, this.connectionsByVolume.ids(volumeId));
  }

  async putVolume(record: VolumeRecord, mark?: RequestMark): Promise<void> {
    const batch: Batch = [
      { type: 'put', key: keys.volume(record.id), value: record },
      { type: 'put', key: keys.byBackend(record.backend, record.id), value: '' },
    ];
    if (record.name !== null) batch.push({ type: 'put', key: keys.byName(record.backend, record.name, record.id), value: '' });
    await this.write(batch, [volumeChange(record)], mark);
    this.setVolume(record);
    if (record.name !== null) this.byName.add(nameKey(record.backend, record.name), record.id);
  }

  async deleteVolume(record: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'del', key: keys.volume(record.id) },
      { type: 'del', key: keys.byBackend(record.backend, record.id) },
    ];
    if (record.name !== null) batch.push({ type: 'del', key: keys.byName(record.backend, record.name, record.id) });
    await this.write(batch, [volumeChange(record)]);
    this.dropVolume(record.id);
    if (record.name !== null) this.byName.remove(nameKey(record.backend, record.name), record.id);
  }

  /** Writes a snapshot and, when given, its volume's new state in the same batch. */
  async putSnapshot(record: SnapshotRecord, volume?: VolumeRecord, mark?: RequestMark): Promise<void> {
    const batch: Batch = [
      { type: 'put', key: keys.snapshot(record.id), value: record },
      { type: 'put', key: keys.snapshotOf(record.volumeId, record.id), value: '' },
    ];
    if (volume) batch.push({ type: 'put', key: keys.volume(volume.id), value: volume });
    await this.write(batch, partOf('snapshot', record, volume), mark);
    this.setSnapshot(record);
    this.snapshotsByVolume.add(record.volumeId, record.id);
    if (volume) this.setVolume(volume);
  }

  async deleteSnapshot(record: SnapshotRecord, volume?: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'del', key: keys.snapshot(record.id) },
      { type: 'del', key: keys.snapshotOf(record.volumeId, record.id) },
    ];
    if (volume) batch.push({ type: 'put', key: keys.volume(volume.id), value: volume });
    await this.write(batch, partOf('snapshot', record, volume));
    this.dropSnapshot(record.id);
    this.snapshotsByVolume.remove(record.volumeId, record.id);
    if (volume) this.setVolume(volume);
  }

  /** Writes a connection with its volume's new status in one batch. */
  async putConnection(record: ConnectionRecord, volume: VolumeRecord, mark?: RequestMark): Promise<void> {
    await this.write(
      [
        { type: 'put', key: keys.connection(record.id), value: record },
        { type: 'put', key: keys.connectionOf(record.volumeId, record.id), value: '' },
        { type: 'put', key: keys.volume(volume.id), value: volume },
      ],
      partOf('connection', record, volume),
      mark,
    );
    this.connections.set(record.id, record);
    this.connectionsByVolume.add(record.volumeId, record.id);
    this.setVolume(volume);
  }

  async deleteConnection(record: ConnectionRecord, volume: VolumeRecord, mark?: RequestMark): Promise<void> {
    await this.write(
      [
        { type: 'del', key: keys.connection(record.id) },
        { type: 'del', key: keys.connectionOf(record.volumeId, record.id) },
        { type: 'put', key: keys.volume(volume.id), value: volume },
      ],
      partOf('connection', record, volume),
      mark,
    );
    this.connections.delete(record.id);
    this.connectionsByVolume.remove(record.volumeId, record.id);
    this.setVolume(volume);
  }

  getGroup(id: string): GroupSnapshotRecord | undefined {
    return this.groups.get(id);
  }
  allGroups(): IterableIterator<GroupSnapshotRecord> {
    return this.groups.values();
  }
  async putGroup(record: GroupSnapshotRecord, mark?: RequestMark): Promise<void> {
    await this.write([{ type: 'put', key: keys.group(record.id), value: record }], [], mark);
    this.groups.set(record.id, record);
  }
  async deleteGroup(id: string): Promise<void> {
    await this.write([{ type: 'del', key: keys.group(id) }], []);
    this.groups.delete(id);
  }

  async kvGet(key: string): Promise<string | null> {
    const value = await this.db.get(keys.kv(key));
    return typeof value === 'string' ? value : null;
  }
  async kvSet(key: string, value: string): Promise<void> {
    await this.synced(() => this.db.put(keys.kv(key), value, { sync: true }));
  }
  async kvDelete(key: string): Promise<boolean> {
    const existed = (await this.db.get(keys.kv(key))) !== undefined;
    if (existed) await this.synced(() => this.db.del(keys.kv(key), { sync: true }));
    return existed;
  }

  /** A client request's entry (exactly-once retries), or undefined. */
  async getRequest(requestId: string): Promise<unknown> {
    return this.db.get(keys.request(requestId));
  }
  /** A request's outcome: not synced, so it survives a crash of the agent but not of the host (its mark does). */
  async putRequest(requestId: string, entry: unknown): Promise<void> {
    const started = performance.now();
    await this.db.put(keys.request(requestId), entry);
    requestCost()?.add('index', started);
  }
  /** Removes the entries `stale` picks; returns how many. */
  async pruneRequests(stale: (entry: unknown) => boolean): Promise<number> {
    const batch: Batch = [];
    for await (const [key, value] of this.db.iterator(prefixRange('req:'))) {
      if (stale(value)) batch.push({ type: 'del', key });
    }
    if (batch.length > 0) await this.db.batch(batch);
    return batch.length;
  }

  async getMeta(name: string): Promise<unknown> {
    return this.db.get(keys.meta(name));
  }
  async setMeta(name: string, value: unknown): Promise<void> {
    await this.synced(() => this.db.put(keys.meta(name), value, { sync: true }));
  }
}
