import { randomUUID } from 'node:crypto';
import type { Level } from 'level';
import type { ChangePosition } from '@kindling/protocol';
import { keys, prefixRange } from './keys.js';

type Batch = ({ type: 'put'; key: string; value: unknown } | { type: 'del'; key: string })[];

/** A record a batch changes: its kind, id, and (snapshots, connections) the volume whose view it is part of. */
export interface Changed {
  kind: 'volume' | 'snapshot' | 'connection';
  id: string;
  volumeId?: string;
}
/** A retained change: the record's state is read from the index when the change is listed. */
export interface ChangeEntry extends Changed {
  seq: number;
  /** Its key, which is also the cursor a page ending on it hands out. */
  key: string;
}

/** The change log's position at one moment (`ChangeLog.mark`). */
export interface ChangeMark {
  seq: number;
  open: ReadonlySet<number>;
}

/** How many of the last changes stay listable; older ones are pruned in the batches that make new ones. */
export const RETAINED_CHANGES = 100_000;

/** Sequence numbers sort as keys: zero-padded to the digits of the largest safe integer. */
const changeKey = (seq: number): string => `chg:${String(seq).padStart(16, '0')}`;
const PREFIX = 'chg:';
/** `meta:changes`: the index incarnation and how far back the history reaches. */
interface Meta {
  epoch: string;
  floor: number;
}

/**
 * The index's change sequence. Each change of a volume, snapshot or connection record gets the next
 * number and a `chg:<seq>` key in the SAME batch as the change itself (no write of its own); the key of
 * the record's previous change (when this process made it) and the change `retain` numbers back are
 * deleted in that batch too, so the history holds one entry per record and stays bounded.
 */
export class ChangeLog {
  private last: number;
  private floor: number;
  /** Numbers handed out whose changes are not yet committed and published (see `committed`). */
  private readonly pending = new Set<number>();
  /** Numbers handed out whose batches are not yet written and applied to memory (store.ts `write`). */
  private readonly open = new Set<number>();
  /** Record id to the number of its latest change made by this process, in the order of those numbers. */
  private readonly latest = new Map<string, number>();

  private constructor(
    private readonly db: Level<string, unknown>,
    private readonly epoch: string,
    floor: number,
    last: number,
    private readonly retain: number,
  ) {
    this.floor = floor;
    this.last = Math.max(last, floor);
  }

  /** Reads the epoch (made at the first open: one synced write), the floor and the last number: a few keys. */
  static async open(db: Level<string, unknown>, retain = RETAINED_CHANGES): Promise<ChangeLog> {
    let meta = (await db.get(keys.meta('changes'))) as Meta | undefined;
    if (meta === undefined) {
      meta = { epoch: randomUUID(), floor: 0 };
      await db.put(keys.meta('changes'), meta, { sync: true });
    }
    let last = 0;
    for await (const key of db.keys({ ...prefixRange(PREFIX), reverse: true, limit: 1 })) last = Number(key.slice(PREFIX.length));
    return new ChangeLog(db, meta.epoch, meta.floor, last, retain);
  }

  /** Numbers the changes of one batch and adds their keys to it; `settle` runs once the batch is written (or failed). */
  record(batch: Batch, changed: readonly Changed[]): (committed: boolean) => void {
    /** Each change's number, and its record's number before (put back if the batch fails: that key stays). */
    const numbered: { id: string; seq: number; previous: number | undefined }[] = [];
    let pruned = false;
    for (const change of changed) {
      const seq = ++this.last;
      this.pending.add(seq);
      this.open.add(seq);
      const previous = this.latest.get(change.id);
      numbered.push({ id: change.id, seq, previous });
      if (previous !== undefined) batch.push({ type: 'del', key: changeKey(previous) });
      this.latest.delete(change.id);
      this.latest.set(change.id, seq);
      batch.push({ type: 'put', key: changeKey(seq), value: change.volumeId ? { k: change.kind, id: change.id, v: change.volumeId } : { k: change.kind, id: change.id } });
      if (seq - this.retain > this.floor) {
        this.floor = seq - this.retain;
        batch.push({ type: 'del', key: changeKey(this.floor) });
        pruned = true;
      }
    }
    if (pruned) {
      batch.push({ type: 'put', key: keys.meta('changes'), value: { epoch: this.epoch, floor: this.floor } satisfies Meta });
    }
    for (const [id, seq] of this.latest) {
      if (seq > this.floor) break;
      this.latest.delete(id);
    }
    return (committed) => {
      for (const { seq } of numbered) this.open.delete(seq);
      // A push for a committed change follows its commit within the same turn (service code publishes right
      // after the index write resolves): one turn later the change has been pushed, and only then does the
      // position that pushes carry pass it. So a client at a pushed position has been sent every change up to it.
      if (committed) return void setImmediate(() => numbered.forEach(({ seq }) => this.pending.delete(seq)));
      for (const { id, seq, previous } of numbered) {
        this.pending.delete(seq);
        if (this.latest.get(id) !== seq) continue;
        if (previous === undefined) this.latest.delete(id);
        else this.latest.set(id, previous);
      }
    };
  }

  /** The position every change up to which is committed and pushed. */
  position(): ChangePosition {
    let seq = this.last;
    for (const pending of this.pending) seq = Math.min(seq, pending - 1);
    return { epoch: this.epoch, seq };
  }

  /** Whether changes after `since` of `epoch` are all still here to list. */
  reaches(epoch: string, since: number): boolean {
    return epoch === this.epoch && since >= this.floor && since <= this.last;
  }

  /** Where the records stand now, for `changedAfter` (a record whose change is still being written counts as changing). */
  mark(): ChangeMark {
    return { seq: this.last, open: new Set(this.open) };
  }

  /**
   * Whether record `id` has changed since `mark`: by a change numbered after it, or one still being
   * written then. True when history no longer reaches back to the mark, as it cannot tell.
   */
  changedAfter(id: string, mark: ChangeMark): boolean {
    if (mark.seq < this.floor) return true;
    const latest = this.latest.get(id);
    return latest !== undefined && (latest > mark.seq || mark.open.has(latest));
  }

  get oldest(): number {
    return this.floor;
  }

  /** Retained changes after `since` in sequence order, skipping those a later change of the same record replaced. */
  async *after(since: number): AsyncGenerator<ChangeEntry> {
    for await (const [key, value] of this.db.iterator({ gt: changeKey(since), lt: prefixRange(PREFIX).lt })) {
      const seq = Number(key.slice(PREFIX.length));
      const { k, id, v } = value as { k: Changed['kind']; id: string; v?: string };
      if ((this.latest.get(id) ?? seq) > seq) continue;
      yield { seq, key: String(seq), kind: k, id, ...(v ? { volumeId: v } : {}) };
    }
  }
}
