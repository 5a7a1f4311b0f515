import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import type { ConnectionRecord, SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { idOfIndexKey, keys, prefixRange } from './keys.js';

const SCHEMA_VERSION = 1;

type Batch = ({ type: 'put'; key: string; value: unknown } | { type: 'del'; key: string })[];

/**
 * The agent's index: LevelDB is the durable truth (every change is one synced batch of a record and its
 * index keys); records are also held in memory, written through, so reads by id never wait on disk.
 * Queries by backend, name and owning volume walk LevelDB's secondary index keys.
 */
export class IndexStore {
  private readonly volumes = new Map<string, VolumeRecord>();
  private readonly snapshots = new Map<string, SnapshotRecord>();
  private readonly connections = new Map<string, ConnectionRecord>();

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
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  private write(batch: Batch): Promise<void> {
    return this.db.batch(batch, { sync: true });
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
  allConnections(): IterableIterator<ConnectionRecord> {
    return this.connections.values();
  }

  private async idsUnder(prefix: string): Promise<string[]> {
    const found = await this.db.keys(prefixRange(prefix)).all();
    return found.map(idOfIndexKey);
  }

  private pick<T>(map: Map<string, T>, ids: string[]): T[] {
    const out: T[] = [];
    for (const id of ids) {
      const record = map.get(id);
      if (record) out.push(record);
    }
    return out;
  }

  async volumesOfBackend(backend: string): Promise<VolumeRecord[]> {
    return this.pick(this.volumes, await this.idsUnder(keys.byBackend(backend, '')));
  }
  async volumesNamed(backend: string, name: string): Promise<VolumeRecord[]> {
    return this.pick(this.volumes, await this.idsUnder(keys.byName(backend, name, '')));
  }
  async snapshotsOf(volumeId: string): Promise<SnapshotRecord[]> {
    return this.pick(this.snapshots, await this.idsUnder(keys.snapshotOf(volumeId, '')));
  }
  async connectionsOf(volumeId: string): Promise<ConnectionRecord[]> {
    return this.pick(this.connections, await this.idsUnder(keys.connectionOf(volumeId, '')));
  }

  async putVolume(record: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'put', key: keys.volume(record.id), value: record },
      { type: 'put', key: keys.byBackend(record.backend, record.id), value: '' },
    ];
    if (record.name !== null) batch.push({ type: 'put', key: keys.byName(record.backend, record.name, record.id), value: '' });
    await this.write(batch);
    this.volumes.set(record.id, record);
  }

  async deleteVolume(record: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'del', key: keys.volume(record.id) },
      { type: 'del', key: keys.byBackend(record.backend, record.id) },
    ];
    if (record.name !== null) batch.push({ type: 'del', key: keys.byName(record.backend, record.name, record.id) });
    await this.write(batch);
    this.volumes.delete(record.id);
  }

  /** Writes a snapshot and, when given, its volume's new state in the same batch. */
  async putSnapshot(record: SnapshotRecord, volume?: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'put', key: keys.snapshot(record.id), value: record },
      { type: 'put', key: keys.snapshotOf(record.volumeId, record.id), value: '' },
    ];
    if (volume) batch.push({ type: 'put', key: keys.volume(volume.id), value: volume });
    await this.write(batch);
    this.snapshots.set(record.id, record);
    if (volume) this.volumes.set(volume.id, volume);
  }

  async deleteSnapshot(record: SnapshotRecord, volume?: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'del', key: keys.snapshot(record.id) },
      { type: 'del', key: keys.snapshotOf(record.volumeId, record.id) },
    ];
    if (volume) batch.push({ type: 'put', key: keys.volume(volume.id), value: volume });
    await this.write(batch);
    this.snapshots.delete(record.id);
    if (volume) this.volumes.set(volume.id, volume);
  }

  /** Writes a connection with its volume's new status in one batch. */
  async putConnection(record: ConnectionRecord, volume: VolumeRecord): Promise<void> {
    await this.write([
      { type: 'put', key: keys.connection(record.id), value: record },
      { type: 'put', key: keys.connectionOf(record.volumeId, record.id), value: '' },
      { type: 'put', key: keys.volume(volume.id), value: volume },
    ]);
    this.connections.set(record.id, record);
    this.volumes.set(volume.id, volume);
  }

  async deleteConnection(record: ConnectionRecord, volume: VolumeRecord): Promise<void> {
    await this.write([
      { type: 'del', key: keys.connection(record.id) },
      { type: 'del', key: keys.connectionOf(record.volumeId, record.id) },
      { type: 'put', key: keys.volume(volume.id), value: volume },
    ]);
    this.connections.delete(record.id);
    this.volumes.set(volume.id, volume);
  }

  async kvGet(key: string): Promise<string | null> {
    const value = await this.db.get(keys.kv(key));
    return typeof value === 'string' ? value : null;
  }
  async kvSet(key: string, value: string): Promise<void> {
    await this.db.put(keys.kv(key), value, { sync: true });
  }
  async kvDelete(key: string): Promise<boolean> {
    const existed = (await this.db.get(keys.kv(key))) !== undefined;
    if (existed) await this.db.del(keys.kv(key), { sync: true });
    return existed;
  }

  async getMeta(name: string): Promise<unknown> {
    return this.db.get(keys.meta(name));
  }
  async setMeta(name: string, value: unknown): Promise<void> {
    await this.db.put(keys.meta(name), value, { sync: true });
  }
}
