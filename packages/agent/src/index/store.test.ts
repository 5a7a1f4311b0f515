import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import { snapshotRecord, volumeRecord } from '../testing/records.js';
import { IndexStore } from './store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-index-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const volume = (id: string, backend: string, name: string | null): VolumeRecord => volumeRecord(id, { backend, name });
const snapshot = (id: string, volumeId: string): SnapshotRecord => snapshotRecord(id, volumeId, { backend: 'a' });

describe('IndexStore', () => {
  it('answers by backend, by name and by owning volume, and keeps it all across a reopen', async () => {
    let index = await IndexStore.open(dir);
    await index.putVolume(volume('v1', 'a', 'db:1'));
    await index.putVolume(volume('v2', 'a', 'db'));
    await index.putVolume(volume('v3', 'b', 'db'));
    await index.putSnapshot(snapshot('s1', 'v1'));
    await index.kvSet('connector', '{"host":"h"}');
    await index.close();

    index = await IndexStore.open(dir);
    expect([...index.idsOf('volume', 'a')].sort()).toEqual(['v1', 'v2']);
    // A name is matched whole: 'db' does not match 'db:1'.
    expect((index.volumesNamed('a', 'db')).map((v) => v.id)).toEqual(['v2']);
    expect((index.volumesNamed('a', 'db:1')).map((v) => v.id)).toEqual(['v1']);
    expect((index.snapshotsOf('v1')).map((s) => s.id)).toEqual(['s1']);
    expect(await index.kvGet('connector')).toBe('{"host":"h"}');
    await index.close();
  });

  it('drops a record and its index keys together', async () => {
    const index = await IndexStore.open(dir);
    await index.putVolume(volume('v1', 'a', 'db'));
    await index.putSnapshot(snapshot('s1', 'v1'));
    await index.deleteSnapshot(snapshot('s1', 'v1'));
    await index.deleteVolume(volume('v1', 'a', 'db'));
    expect(index.getVolume('v1')).toBeUndefined();
    expect([...index.idsOf('volume', 'a')]).toEqual([]);
    expect(index.volumesNamed('a', 'db')).toEqual([]);
    expect(index.snapshotsOf('v1')).toEqual([]);
    expect(await index.kvDelete('missing')).toBe(false);
    await index.close();
  });
});

describe('records held as their stored text', () => {
  it('reads records written by an index that stored objects exactly as they were written', async () => {
    const written = [volume('v1', 'a', 'x "y" \\ z'), { ...volume('v2', 'b', null), metadata: { status: 'error', name: 'n' } }];
    const snap = snapshot('s1', 'v1');
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.batch([...written.map((v) => ({ type: 'put' as const, key: `vol:${v.id}`, value: v })), { type: 'put', key: 'snap:s1', value: snap }]);
    await db.close();
    const index = await IndexStore.open(dir);
    expect(index.getVolume('v1')).toEqual(written[0]);
    expect(written.map((v) => index.getVolume(v.id))).toEqual(written);
    expect([...index.idsOf('volume', 'a'), ...index.idsOf('volume', 'b')].sort()).toEqual(['v1', 'v2']);
    expect(index.volumesNamed('a', 'x "y" \\ z')).toEqual([written[0]]);
    expect(index.volumesInStatus('b', ['available'])).toEqual([written[1]]);
    expect(index.snapshotsOf('v1')).toEqual([snap]);
    await index.close();
  });

  it('hands each reader its own record: changing it changes nothing the index holds', async () => {
    const index = await IndexStore.open(dir);
    await index.putVolume(volume('v1', 'a', 'db'));
    index.getVolume('v1')!.status = 'error';
    index.volumesNamed('a', 'db')[0]!.name = 'other';
    expect(index.getVolume('v1')).toEqual(volume('v1', 'a', 'db'));
    await index.close();
  });

  it('finds a renamed volume by its new name only, and a name on any backend', async () => {
    const index = await IndexStore.open(dir);
    await index.putVolume(volume('v1', 'a', 'old'));
    await index.putVolume(volume('v2', 'b', 'old'));
    await index.putVolume(volume('v1', 'a', 'new'));
    expect(index.volumesNamed('a', 'old')).toEqual([]);
    expect(index.volumesNamed('a', 'new').map((v) => v.id)).toEqual(['v1']);
    expect(index.volumesNamed(undefined, 'old').map((v) => v.id)).toEqual(['v2']);
    await index.close();
  });
});

describe('records by status', () => {
  it('finds a backend\'s records in given statuses without reading the others, as statuses change and across a reopen', async () => {
    let index = await IndexStore.open(dir);
    await index.putVolume({ ...volume('v1', 'a', null), status: 'creating' });
    await index.putVolume(volume('v2', 'a', null));
    await index.putVolume({ ...volume('v3', 'b', null), status: 'creating' });
    await index.putSnapshot({ ...snapshot('s1', 'v2'), status: 'deleting' });
    const ids = (records: { id: string }[]) => records.map((r) => r.id).sort();
    expect(ids(index.volumesInStatus('a', ['creating', 'deleting']))).toEqual(['v1']);
    expect(ids(index.snapshotsInStatus('a', ['deleting']))).toEqual(['s1']);

    await index.putVolume({ ...volume('v1', 'a', null), status: 'available' });
    await index.putConnection(
      { id: 'c1', volumeId: 'v2' } as Parameters<IndexStore['putConnection']>[0],
      { ...volume('v2', 'a', null), status: 'deleting' },
    );
    await index.deleteSnapshot(snapshot('s1', 'v2'));
    await index.close();

    index = await IndexStore.open(dir);
    expect(ids(index.volumesInStatus('a', ['creating', 'deleting']))).toEqual(['v2']);
    expect(index.snapshotsInStatus('a', ['deleting'])).toEqual([]);
    await index.deleteVolume(volume('v2', 'a', null));
    expect(index.volumesInStatus('a', ['deleting'])).toEqual([]);
    await index.close();
  });
});

describe('counts per backend', () => {
  it('counts a backend\'s volumes and snapshots as records come, change status and go, and across a reopen', async () => {
    let index = await IndexStore.open(dir);
    await index.putVolume({ ...volume('v1', 'a', null), status: 'creating' });
    await index.putVolume(volume('v2', 'a', null));
    await index.putVolume(volume('v3', 'b', null));
    await index.putSnapshot(snapshot('s1', 'v2'));
    await index.putVolume(volume('v1', 'a', null)); // a status change is no new volume
    expect(index.countOf('a')).toEqual({ volumes: 2, snapshots: 1 });
    expect(index.countOf('b')).toEqual({ volumes: 1, snapshots: 0 });
    await index.close();

    index = await IndexStore.open(dir);
    expect(index.countOf('a')).toEqual({ volumes: 2, snapshots: 1 });
    await index.deleteSnapshot(snapshot('s1', 'v2'));
    await index.deleteVolume(volume('v2', 'a', null));
    await index.deleteVolume(volume('v2', 'a', null)); // a second delete counts nothing
    expect(index.countOf('a')).toEqual({ volumes: 1, snapshots: 0 });
    expect(index.countOf('none')).toEqual({ volumes: 0, snapshots: 0 });
    await index.close();
  });
});

describe('opening', () => {
  it('derives every lookup from the records alone: the records are the truth, their index keys a copy for paging', async () => {
    let index = await IndexStore.open(dir);
    await index.putVolume(volume('v1', 'a', 'a:b c'));
    await index.putVolume(volume('v2', 'a', 'a:b c'));
    await index.putSnapshot(snapshot('s1', 'v1'));
    await index.putConnection({ id: 'c1', volumeId: 'v1' } as Parameters<IndexStore['putConnection']>[0], volume('v1', 'a', 'a:b c'));
    await index.close();
    const db = new Level<string, string>(dir);
    await db.clear({ gte: 'idx:', lt: 'idx:\xff' });
    await db.close();

    index = await IndexStore.open(dir);
    expect(index.volumesNamed('a', 'a:b c').map((v) => v.id).sort()).toEqual(['v1', 'v2']);
    expect([...index.idsOf('volume', 'a')].sort()).toEqual(['v1', 'v2']);
    expect(index.snapshotsOf('v1').map((s) => s.id)).toEqual(['s1']);
    expect(index.connectionsOf('v1').map((c) => c.id)).toEqual(['c1']);
    // A name shared by two volumes, then by one again, then by none.
    await index.deleteVolume(volume('v2', 'a', 'a:b c'));
    expect(index.volumesNamed('a', 'a:b c').map((v) => v.id)).toEqual(['v1']);
    await index.deleteVolume(volume('v1', 'a', 'a:b c'));
    expect(index.volumesNamed('a', 'a:b c')).toEqual([]);
    await index.close();
  });
});
