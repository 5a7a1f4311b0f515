import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, InvalidArgumentError, type VolumeRecord } from '@kindling/protocol';
import { IndexStore } from '../index/store.js';
import { volumeRecord } from '../testing/records.js';
import { REQUEST_RETENTION_MS, RequestLedger, type CallContext } from './requests.js';

let dir: string;
let index: IndexStore;
const volumes = new Map<string, VolumeRecord>();
const ledger = () => new RequestLedger(index, { volume: (id) => volumes.get(id), snapshot: () => undefined, connection: () => undefined });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-requests-'));
  index = await IndexStore.open(join(dir, 'index'));
  volumes.clear();
});
afterEach(async () => {
  await index.close();
  await rm(dir, { recursive: true, force: true });
});

const record = (id: string, status: VolumeRecord['status'] = 'available'): VolumeRecord =>
  volumeRecord(id, {
    status,
    error: status === 'error' ? { code: 'BACKEND_ERROR', message: 'the agent stopped while the create was in progress' } : null,
  });

describe('exactly-once requests', () => {
  it('answers a retry of a finished request with its outcome, without running it again', async () => {
    const l = ledger();
    let runs = 0;
    const work = async ({ newId }: CallContext) => {
      runs++;
      return record(newId);
    };
    const first = (await l.run('r1', 'volume.create', work)) as VolumeRecord;
    const again = (await l.run('r1', 'volume.create', work)) as VolumeRecord;
    expect(runs).toBe(1);
    expect(again.id).toBe(first.id);
  });

  it('runs a request once when its retry arrives while it still runs', async () => {
    const l = ledger();
    let runs = 0;
    let release!: () => void;
    const work = async () => {
      runs++;
      await new Promise<void>((r) => (release = r));
      return { ok: true };
    };
    const a = l.run('r2', 'volume.delete', work);
    await new Promise((r) => setTimeout(r, 10));
    const b = l.run('r2', 'volume.delete', work);
    release();
    expect(await Promise.all([a, b])).toEqual([{ ok: true }, { ok: true }]);
    expect(runs).toBe(1);
  });

  it('replays a failure as the same typed error', async () => {
    const l = ledger();
    const fail = async () => {
      throw new ConflictError('volume has snapshots', { id: 'x' });
    };
    await expect(l.run('r3', 'volume.delete', fail)).rejects.toBeInstanceOf(ConflictError);
    await expect(l.run('r3', 'volume.delete', async () => 'ran again')).rejects.toThrow(/has snapshots/);
  });

  it('refuses a request id reused for another op', async () => {
    const l = ledger();
    await l.run('r4', 'kv.set', async () => ({ ok: true }));
    await expect(l.run('r4', 'kv.delete', async () => ({ existed: true }))).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('after a restart, hands back the resource a creating request had started, or makes it with the same id', async () => {
    // A create whose record was written with its mark, then the agent died: recovery left it in error.
    await index.putRequest('r5', { op: 'volume.create', at: Date.now(), resourceId: 'vol-5' });
    volumes.set('vol-5', record('vol-5', 'error'));
    await expect(ledger().run('r5', 'volume.create', async () => 'ran again')).rejects.toThrow(/stopped while the create/);

    // One whose record is gone since runs again, making the very id it was given.
    await index.putRequest('r6', { op: 'volume.create', at: Date.now(), resourceId: 'vol-6' });
    const made = await ledger().run('r6', 'volume.create', async ({ newId }) => record(newId));
    expect((made as VolumeRecord).id).toBe('vol-6');
  });

  it('forgets outcomes past the retention', async () => {
    const l = ledger();
    await l.run('old', 'kv.set', async () => ({ ok: true }));
    await l.run('new', 'kv.set', async () => ({ ok: true }));
    await index.putRequest('old', { op: 'kv.set', at: Date.now() - REQUEST_RETENTION_MS - 1, outcome: { ok: true, result: 1 } });
    expect(await l.prune()).toBe(1);
    expect(await index.getRequest('old')).toBeUndefined();
    expect(await index.getRequest('new')).toBeDefined();
  });
});
