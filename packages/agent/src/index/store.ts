import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import type { ConnectionRecord, SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { charged, requestCost } from '../cost.js';
import { keys, nameKey, parseIndexKey, prefixRange, type IndexName } from './keys.js';

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

const statusKey = (record: { backend: string; status: string }): string => `${record.backend}:${record.status}`;

/** One secondary index: a key (backend, name, volume id) to the ids under it, mirrored from LevelDB. */
class Postings {
  private readonly map = new Map<string, Set<string>>();
  add(key: string, id: string): void {
    let ids = this.map.get(key);
    if (!ids) this.map.set(key, (ids = new Set()));
    ids.add(id);
  }
  remove(key: string, id: string): void {
    const ids = this.map.get(key);
    if (!ids) return;
    ids.delete(id);
    if (ids.size === 0) this.map.delete(key);
  }
  ids(key: string): Iterable<string> {
    return this.map.get(key) ?? [];
  }
}

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
  private readonly byBackend = new Postings();
  private readonly byName = new Postings();
  private readonly snapshotsByVolume = new Postings();
  private readonly connectionsByVolume = new Postings();
  /** `backend:status` to ids, in memory only: recovery finds what was in flight without reading every record. */
  private readonly volumesByStatus = new Postings();
  private readonly snapshotsByStatus = new Postings();

  private constructor(private readonly db: Level<string, unknown>) {}

  static async open(dir: string): Promise<IndexStore> {
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
    const store = new IndexStore(db);
    await store.load();
    return store;
  }

  private async load(): Promise<void> {
    const version = await this.db.get(keys.meta('schema'));
    if (version === undefined) await this.db.put(keys.meta('schema'), SCHEMA_VERSION, { sync: true });
    else if (version !== SCHEMA_VERSION) throw new Error(`index schema ${String(version)} is not ${SCHEMA_VERSION}`);
    for (const [prefix, map] of [
      ['vol:', this.volumes],
      ['snap:', this.snapshots],
      ['conn:', this.connections],
    ] as const) {
      for await (const [key, value] of this.db.iterator(prefixRange(prefix))) {
        (map as Map<string, unknown>).set(key.slice(prefix.length), value);
      }
    }
    for (const v of this.volumes.values()) this.volumesByStatus.add(statusKey(v), v.id);
    for (const snap of this.snapshots.values()) this.snapshotsByStatus.add(statusKey(snap), snap.id);
    for await (const key of this.db.keys(prefixRange('idx:'))) {
      const parsed = parseIndexKey(key);
      if (parsed) this.postings(parsed.index).add(parsed.key, parsed.id);
    }
  }

  private postings(index: IndexName): Postings {
    switch (index) {
      case 'backend':
        return this.byBackend;
      case 'vname':
        return this.byName;
      case 'snapvol':
        return this.snapshotsByVolume;
      case 'connvol':
        return this.connectionsByVolume;
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private write(batch: Batch, mark?: RequestMark): Promise<void> {
    if (mark) batch.push({ type: 'put', key: keys.request(mark.requestId), value: mark.entry });
    return this.synced(() => this.db.batch(batch, { sync: true }));
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
  }
  private dropVolume(id: string): void {
    const old = this.volumes.get(id);
    if (old) this.volumesByStatus.remove(statusKey(old), id);
    this.volumes.delete(id);
  }
  private setSnapshot(record: SnapshotRecord): void {
    this.dropSnapshot(record.id);
    this.snapshots.set(record.id, record);
    this.snapshotsByStatus.add(statusKey(record), record.id);
  }
  private dropSnapshot(id: string): void {
    const old = this.snapshots.get(id);
    if (old) this.snapshotsByStatus.remove(statusKey(old), id);
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
    return this.pick(this.volumes, this.byBackend.ids(backend));
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
    await this.write(batch, mark);
    this.setVolume(record);
    this.byBackend.add(record.backend, record.id);
    if (record.name !== null) this.byName.add(nameKey(record.backend, record.name), record.id);
  }

  async deleteVolume(record: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'del', key: keys.volume(record.id) },
      { type: 'del', key: keys.byBackend(record.backend, record.id) },
    ];
    if (record.name !== null) batch.push({ type: 'del', key: keys.byName(record.backend, record.name, record.id) });
    await this.write(batch);
    this.dropVolume(record.id);
    this.byBackend.remove(record.backend, record.id);
    if (record.name !== null) this.byName.remove(nameKey(record.backend, record.name), record.id);
  }

  /** Writes a snapshot and, when given, its volume's new state in the same batch. */
  async putSnapshot(record: SnapshotRecord, volume?: VolumeRecord, mark?: RequestMark): Promise<void> {
    const batch: Batch = [
      { type: 'put', key: keys.snapshot(record.id), value: record },
      { type: 'put', key: keys.snapshotOf(record.volumeId, record.id), value: '' },
    ];
    if (volume) batch.push({ type: 'put', key: keys.volume(volume.id), value: volume });
    await this.write(batch, mark);
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
    await this.write(batch);
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
      mark,
    );
    this.connections.delete(record.id);
    this.connectionsByVolume.remove(record.volumeId, record.id);
    this.setVolume(volume);
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
