import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import type { ConnectionRecord, GroupSnapshotRecord, SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { charged, requestCost } from '../cost.js';
import { ChangeLog, type ChangeEntry, type Changed } from './changes.js';
import { keys, prefixRange } from './keys.js';
import { Postings, Tally } from './postings.js';
import { keysOf, type RecordKind } from './record-text.js';

const SCHEMA_VERSION = 1;

type Batch = ({ type: 'put'; key: string; value: unknown; valueEncoding?: 'utf8' } | { type: 'del'; key: string })[];

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

/** Records read from LevelDB at once: one native call per batch, not per record. */
const LOAD_BATCH = 1000;

const parse = <T>(text: string): T => JSON.parse(text) as T;
/** A record's put: its text stored as is (`utf8`), so the text kept in memory is the one stored. */
const putText = (key: string, text: string) => ({ type: 'put' as const, key, value: text, valueEncoding: 'utf8' as const });

/**
 * The agent's index. LevelDB is the durable truth: every change is one synced batch of a record and
 * its secondary index keys. At open the records are read into memory, and every write goes through to
 * both, so reads (by id, backend, name, owning volume) never wait on disk: `volume.list` of 1,000
 * volumes with their snapshots is a walk over maps, not 2,000 range scans. Volumes and snapshots are
 * held as their stored JSON text and parsed when read (record-text.ts): each read returns a new object.
 */
export class IndexStore {
  /** Volume id to the record's stored JSON text. */
  private readonly volumes = new Map<string, string>();
  private readonly snapshots = new Map<string, string>();
  private readonly connections = new Map<string, ConnectionRecord>();
  /** Backend to volume name to ids: keyed by the name the record holds, no key string made per volume. */
  private readonly byName = new Map<string, Postings>();
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
    await store.eachText('grp:', (text) => {
      const group = parse<GroupSnapshotRecord>(text);
      store.groups.set(group.id, group);
    });
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
    await this.eachText('vol:', (text) => this.setVolume(text));
    await this.eachText('snap:', (text) => this.setSnapshot(text));
    await this.eachText('conn:', (text) => {
      const conn = parse<ConnectionRecord>(text);
      this.connections.set(conn.id, conn);
      this.connectionsByVolume.add(conn.volumeId, conn.id);
    });
  }

  /** Each record's text under `prefix`, read in batches: an await per record cost twice as long at 100,000. */
  private async eachText(prefix: string, take: (text: string) => void): Promise<void> {
    const iterator = this.db.iterator<string, string>({ ...prefixRange(prefix), keys: false, valueEncoding: 'utf8' });
    // The next batch is read (on LevelDB's thread) while this one is taken in.
    let next = iterator.nextv(LOAD_BATCH);
    try {
      for (let batch = await next; batch.length > 0; batch = await next) {
        next = iterator.nextv(LOAD_BATCH);
        for (const [, text] of batch) take(text);
      }
    } finally {
      // A batch still being read when `take` threw: its outcome no longer matters, only that it is over.
      await next.catch(() => undefined);
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

  /**
   * One synced batch: the change, its numbers in the change sequence, and the request's mark; then
   * `apply` brings memory up to it, before the change log calls the change committed (changes.ts `mark`).
   */
  private async write(batch: Batch, changed: Changed[], apply: () => void, mark?: RequestMark): Promise<void> {
    if (mark) batch.push({ type: 'put', key: keys.request(mark.requestId), value: mark.entry });
    const settle = this.changes.record(batch, changed);
    try {
      await this.synced(() => this.db.batch(batch, { sync: true }));
    } catch (err) {
      settle(false);
      throw err;
    }
    apply();
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
    const text = this.volumes.get(id);
    return text === undefined ? undefined : parse(text);
  }
  getSnapshot(id: string): SnapshotRecord | undefined {
    const text = this.snapshots.get(id);
    return text === undefined ? undefined : parse(text);
  }
  getConnection(id: string): ConnectionRecord | undefined {
    return this.connections.get(id);
  }

  *allSnapshots(): IterableIterator<SnapshotRecord> {
    for (const text of this.snapshots.values()) yield parse(text);
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

  // Every change of a record in memory goes through these, from the record's stored text, so its
  // postings (status, name, owning volume) and counts follow it.
  private setVolume(text: string): void {
    const record = keysOf(text, 'volume');
    this.dropVolume(record.id);
    this.volumes.set(record.id, text);
    this.volumesByStatus.add(statusKey(record), record.id);
    if (record.name !== null) this.namesOn(record.backend).add(record.name, record.id);
    this.volumeCount.add(record.backend, 1);
  }
  private namesOn(backend: string): Postings {
    let names = this.byName.get(backend);
    if (names === undefined) this.byName.set(backend, (names = new Postings()));
    return names;
  }
  private dropVolume(id: string): void {
    const text = this.volumes.get(id);
    if (text === undefined) return;
    const old = keysOf(text, 'volume');
    this.volumesByStatus.remove(statusKey(old), id);
    if (old.name !== null) this.byName.get(old.backend)?.remove(old.name, id);
    this.volumeCount.add(old.backend, -1);
    this.volumes.delete(id);
  }
  private setSnapshot(text: string): void {
    const record = keysOf(text, 'snapshot');
    this.dropSnapshot(record.id);
    this.snapshots.set(record.id, text);
    this.snapshotsByStatus.add(statusKey(record), record.id);
    if (record.volumeId !== null) this.snapshotsByVolume.add(record.volumeId, record.id);
    this.snapshotCount.add(record.backend, 1);
  }
  private dropSnapshot(id: string): void {
    const text = this.snapshots.get(id);
    if (text === undefined) return;
    const old = keysOf(text, 'snapshot');
    this.snapshotsByStatus.remove(statusKey(old), id);
    if (old.volumeId !== null) this.snapshotsByVolume.remove(old.volumeId, id);
    this.snapshotCount.add(old.backend, -1);
    this.snapshots.delete(id);
  }

  /** The records of `ids` that are held, parsed from their text. */
  private pick<T>(map: Map<string, string>, ids: Iterable<string>): T[] {
    const out: T[] = [];
    for (const id of ids) {
      const text = map.get(id);
      if (text !== undefined) out.push(parse(text));
    }
    return out;
  }


  /** The ids of a backend's volumes or snapshots, no record read. */
  idsOf(kind: RecordKind, backend: string): Iterable<string> {
    return (kind === 'volume' ? this.volumesByStatus : this.snapshotsByStatus).idsUnder(`${backend}:`);
  }
  /** Whether a volume or snapshot record is held, no record read. */
  has(kind: RecordKind, id: string): boolean {
    return (kind === 'volume' ? this.volumes : this.snapshots).has(id);
  }

  /** Volumes named `name` on `backend`, or on any backend (a lookup per backend, not a walk over every volume). */
  volumesNamed(backend: string | undefined, name: string): VolumeRecord[] {
    if (backend === undefined) return [...this.volumeCount.keys()].flatMap((b) => this.volumesNamed(b, name));
    return this.pick(this.volumes, this.byName.get(backend)?.ids(name) ?? []);
  }
  snapshotsOf(volumeId: string): SnapshotRecord[] {
    return this.pick(this.snapshots, this.snapshotsByVolume.ids(volumeId));
  }
  connectionsOf(volumeId: string): ConnectionRecord[] {
    return [...this.connectionsByVolume.ids(volumeId)].flatMap((id) => this.connections.get(id) ?? []);
  }

  async putVolume(record: VolumeRecord, mark?: RequestMark): Promise<void> {
    const text = JSON.stringify(record);
    const batch: Batch = [
      putText(keys.volume(record.id), text),
      { type: 'put', key: keys.byBackend(record.backend, record.id), value: '' },
    ];
    if (record.name !== null) batch.push({ type: 'put', key: keys.byName(record.backend, record.name, record.id), value: '' });
    await this.write(batch, [volumeChange(record)], () => this.setVolume(text), mark);
  }

  async deleteVolume(record: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'del', key: keys.volume(record.id) },
      { type: 'del', key: keys.byBackend(record.backend, record.id) },
    ];
    if (record.name !== null) batch.push({ type: 'del', key: keys.byName(record.backend, record.name, record.id) });
    await this.write(batch, [volumeChange(record)], () => this.dropVolume(record.id));
  }

  /** Writes a snapshot and, when given, its volume's new state in the same batch. */
  async putSnapshot(record: SnapshotRecord, volume?: VolumeRecord, mark?: RequestMark): Promise<void> {
    const text = JSON.stringify(record);
    const volumeText = volume && JSON.stringify(volume);
    const batch: Batch = [
      putText(keys.snapshot(record.id), text),
      { type: 'put', key: keys.snapshotOf(record.volumeId, record.id), value: '' },
    ];
    if (volume && volumeText) batch.push(putText(keys.volume(volume.id), volumeText));
    const apply = () => {
      this.setSnapshot(text);
      if (volumeText) this.setVolume(volumeText);
    };
    await this.write(batch, partOf('snapshot', record, volume), apply, mark);
  }

  async deleteSnapshot(record: SnapshotRecord, volume?: VolumeRecord): Promise<void> {
    const batch: Batch = [
      { type: 'del', key: keys.snapshot(record.id) },
      { type: 'del', key: keys.snapshotOf(record.volumeId, record.id) },
    ];
    const volumeText = volume && JSON.stringify(volume);
    if (volume && volumeText) batch.push(putText(keys.volume(volume.id), volumeText));
    const apply = () => {
      this.dropSnapshot(record.id);
      if (volumeText) this.setVolume(volumeText);
    };
    await this.write(batch, partOf('snapshot', record, volume), apply);
  }

  /** Writes a connection with its volume's new status in one batch. */
  async putConnection(record: ConnectionRecord, volume: VolumeRecord, mark?: RequestMark): Promise<void> {
    const volumeText = JSON.stringify(volume);
    await this.write(
      [
        { type: 'put', key: keys.connection(record.id), value: record },
        { type: 'put', key: keys.connectionOf(record.volumeId, record.id), value: '' },
        putText(keys.volume(volume.id), volumeText),
      ],
      partOf('connection', record, volume),
      () => {
        this.connections.set(record.id, record);
        this.connectionsByVolume.add(record.volumeId, record.id);
        this.setVolume(volumeText);
      },
      mark,
    );
  }

  async deleteConnection(record: ConnectionRecord, volume: VolumeRecord, mark?: RequestMark): Promise<void> {
    const volumeText = JSON.stringify(volume);
    await this.write(
      [
        { type: 'del', key: keys.connection(record.id) },
        { type: 'del', key: keys.connectionOf(record.volumeId, record.id) },
        putText(keys.volume(volume.id), volumeText),
      ],
      partOf('connection', record, volume),
      () => {
        this.connections.delete(record.id);
        this.connectionsByVolume.remove(record.volumeId, record.id);
        this.setVolume(volumeText);
      },
      mark,
    );
  }

  getGroup(id: string): GroupSnapshotRecord | undefined {
    return this.groups.get(id);
  }
  allGroups(): IterableIterator<GroupSnapshotRecord> {
    return this.groups.values();
  }
  async putGroup(record: GroupSnapshotRecord, mark?: RequestMark): Promise<void> {
    await this.write([{ type: 'put', key: keys.group(record.id), value: record }], [], () => this.groups.set(record.id, record), mark);
  }
  async deleteGroup(id: string): Promise<void> {
    await this.write([{ type: 'del', key: keys.group(id) }], [], () => this.groups.delete(id));
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
