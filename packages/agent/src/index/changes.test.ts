import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectionRecord, snapshotRecord, volumeRecord } from '../testing/records.js';
import type { ChangeEntry } from './changes.js';
import { IndexStore } from './store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-changes-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The position moves past a committed change one turn later (after its push): wait that turn. */
const turn = () => new Promise((resolve) => setImmediate(resolve));
async function listed(index: IndexStore, since: number): Promise<Omit<ChangeEntry, 'key'>[]> {
  const out: Omit<ChangeEntry, 'key'>[] = [];
  for await (const { key: _key, ...entry } of index.changesAfter(since)) out.push(entry);
  return out;
}

describe('the change sequence', () => {
  it('numbers every change of a volume, snapshot or connection, keeps one entry per record (tombstones too), across a reopen', async () => {
    let index = await IndexStore.open(dir);
    const { epoch, seq: start } = index.changes.position();
    expect(start).toBe(0);
    const v1 = volumeRecord('v1');
    await index.putVolume(v1); // 1
    await index.putVolume(volumeRecord('v2')); // 2
    await index.putSnapshot(snapshotRecord('s1', 'v1'), v1); // 3 (s1), 4 (v1)
    await index.putConnection(connectionRecord('c1', 'v1'), v1); // 5 (c1), 6 (v1)
    await index.deleteVolume(volumeRecord('v2')); // 7: v2's tombstone
    await turn();
    expect(index.changes.position()).toEqual({ epoch, seq: 7 });
    const expected = [
      { seq: 3, kind: 'snapshot', id: 's1', volumeId: 'v1' },
      { seq: 5, kind: 'connection', id: 'c1', volumeId: 'v1' },
      { seq: 6, kind: 'volume', id: 'v1' },
      { seq: 7, kind: 'volume', id: 'v2' },
    ];
    expect(await listed(index, 0)).toEqual(expected);
    expect(await listed(index, 5)).toEqual(expected.slice(2));
    expect(index.getVolume('v2')).toBeUndefined();
    await index.close();

    index = await IndexStore.open(dir);
    expect(index.changes.position()).toEqual({ epoch, seq: 7 });
    expect(await listed(index, 0)).toEqual(expected);
    await index.putVolume(v1); // 8
    await turn();
    expect((await listed(index, 6)).map((c) => [c.seq, c.id])).toEqual([[7, 'v2'], [8, 'v1']]);
    expect(index.changes.reaches(epoch, 0)).toBe(true);
    await index.close();
  });

  it('keeps a bounded history, pruned in the changes own batches; older or foreign positions do not reach', async () => {
    let index = await IndexStore.open(dir, { retainChanges: 3 });
    const { epoch } = index.changes.position();
    for (const id of ['a', 'b', 'c', 'd', 'e']) await index.putVolume(volumeRecord(id));
    await turn();
    expect((await listed(index, 0)).map((c) => c.id)).toEqual(['c', 'd', 'e']);
    expect(index.changes.reaches(epoch, 1)).toBe(false);
    expect(index.changes.reaches(epoch, 2)).toBe(true);
    expect(index.changes.reaches('another-index', 4)).toBe(false);
    // Ahead of this index (a restored copy of the data dir): not a continuation either.
    expect(index.changes.reaches(epoch, 6)).toBe(false);
    await index.close();

    index = await IndexStore.open(dir, { retainChanges: 3 });
    expect(index.changes.reaches(epoch, 1)).toBe(false);
    expect(index.changes.reaches(epoch, 2)).toBe(true);
    await index.close();

    // A wiped data dir is a new incarnation: a position from the old one never reads as a continuation.
    await rm(dir, { recursive: true, force: true });
    index = await IndexStore.open(dir);
    expect(index.changes.position().epoch).not.toBe(epoch);
    expect(index.changes.reaches(epoch, 0)).toBe(false);
    await index.close();
  });

  it('a batch that failed leaves the record listed at its last committed change', async () => {
    const index = await IndexStore.open(dir);
    await index.putVolume(volumeRecord('v1'));
    await index.putVolume(volumeRecord('v2'));
    // A value JSON cannot hold: the batch is refused before anything is written.
    await expect(index.putVolume(volumeRecord('v1', { metadata: { n: 1n as unknown as string } }))).rejects.toThrow();
    await turn();
    expect((await listed(index, 0)).map((c) => [c.seq, c.id])).toEqual([[1, 'v1'], [2, 'v2']]);
    await index.close();
  });

  it('a position passes a change only once it is committed, never while an earlier one is in flight', async () => {
    const index = await IndexStore.open(dir);
    const first = index.putVolume(volumeRecord('x'));
    const second = index.putVolume(volumeRecord('y'));
    expect(index.changes.position().seq).toBe(0);
    await first;
    await second;
    await turn();
    expect(index.changes.position().seq).toBe(2);
    await index.close();
  });
});

describe('a mark of the change log', () => {
  it('tells which records changed since it (one still being written then counts), and cannot tell once history passed it', async () => {
    const index = await IndexStore.open(dir, { retainChanges: 3 });
    await index.putVolume(volumeRecord('v1'));
    await index.putVolume(volumeRecord('v2'));
    const writing = index.putVolume(volumeRecord('v3'));
    const mark = index.changes.mark();
    await writing;
    expect(['v1', 'v2', 'v3', 'never'].map((id) => index.changes.changedAfter(id, mark))).toEqual([false, false, true, false]);
    await index.deleteVolume(volumeRecord('v2'));
    expect(index.changes.changedAfter('v2', mark)).toBe(true);
    expect(index.changes.changedAfter('v1', mark)).toBe(false);
    // Three changes are retained: three after the mark's and it is older than the history.
    await index.putVolume(volumeRecord('v4'));
    await index.putVolume(volumeRecord('v5'));
    await index.putVolume(volumeRecord('v6'));
    expect(index.changes.changedAfter('v1', mark)).toBe(true);
    await index.close();
  });
});
