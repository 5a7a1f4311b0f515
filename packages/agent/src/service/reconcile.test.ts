import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ScanResult } from '../drivers/driver.js';
import type { Services } from '../services.js';
import { tempServices, type TempServices } from '../testing/temp-services.js';
import { reconcile } from './reconcile.js';

// The index check while the agent serves: operations run during the scan, and only real drift counts.
let t: TempServices;
let dir: string;
let s: Services;

beforeEach(async () => {
  t = await tempServices('reconcile');
  ({ dir, services: s } = t);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await t.dispose();
});

/** Runs `meanwhile` after storage was read and before the scan returns, as a concurrent operation would. */
function duringScan(meanwhile: () => Promise<void>, extra: Partial<ScanResult> = {}): void {
  const driver = s.backends.get('nfs');
  const scan = driver.scan.bind(driver);
  vi.spyOn(driver, 'scan').mockImplementation(async () => {
    const found = await scan();
    await meanwhile();
    return { ...found, ...extra };
  });
}

describe('the index check', () => {
  it('ignores what was created, changed or deleted during the scan, and reports real drift both ways', async () => {
    const deleted = await s.volumes.create({ backend: 'nfs', size: 1 });
    const withSnapshot = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snapshot = await s.snapshots.create({ volumeId: withSnapshot.id });
    const lostFile = await s.volumes.create({ backend: 'nfs', size: 1 });
    const lostRecord = await s.volumes.create({ backend: 'nfs', size: 1 });
    // Drift behind the agent's back, before the check.
    await unlink(join(dir, 'share', `volume-${lostFile.id}`));
    await s.index.deleteVolume(lostRecord);
    let created = '';
    duringScan(async () => {
      await s.volumes.delete(deleted.id);
      await s.snapshots.delete(snapshot.id);
      created = (await s.volumes.create({ backend: 'nfs', size: 1 })).id;
    });

    const [report] = await reconcile(s, false);
    expect(created).not.toBe('');
    expect(report).toMatchObject({
      backend: 'nfs',
      missingFromIndex: [{ kind: 'volume', id: lostRecord.id }],
      missingFromStorage: [{ kind: 'volume', id: lostFile.id, status: 'available' }],
    });
    expect(report!.error).toBeUndefined();
  });

  it('reports the leftovers and strays the scan found, and keeps the strays for /readyz', async () => {
    const strays = [{ where: join(dir, 'share', 'foreign.img'), reason: 'not a Kindling name' }];
    const leftovers = [{ kind: 'partial-volume' as const, id: 'a-running-create', where: join(dir, 'share', 'volume-x.part') }];
    duringScan(async () => undefined, { strays, leftovers });

    const [report] = await reconcile(s, false);
    expect(report).toMatchObject({ strays, leftovers, missingFromIndex: [], missingFromStorage: [] });
    // A running operation's temporary files are not leftovers for /readyz: only recovery at start can tell.
    const [nfs] = await s.backends.readiness();
    expect(nfs).toMatchObject({ findings: { strays: 1, leftovers: 0 } });
  });
});
