import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig, type AgentConfig } from '../config.js';
import { NfsDriver } from '../drivers/nfs/driver.js';
import { infoTempFile, ownerTag, partFile } from '../drivers/nfs/names.js';
import { openServices, type Services } from '../services.js';

// Start after a kill is proportional to what was in flight: storage is read before ready only for a
// backend with records an operation left transient (or a scan owed); the rest is the background check's.
let dir: string;
let config: AgentConfig;
let services: Services | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-start-'));
  config = parseConfig({ dataDir: join(dir, 'data'), backends: [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')] }] }, dir);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await services?.close();
  services = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** The services as a start after a kill opens them (the last stop was not clean). */
const startAfterKill = async (): Promise<Services> => {
  await services?.close(false);
  return (services = await openServices(config));
};

describe('start after a kill', () => {
  it('reads no storage before ready when nothing was in flight, and removes the leftovers after ready', async () => {
    const s = await startAfterKill();
    await s.volumes.create({ backend: 'nfs', size: 1 });
    // A leftover no record points at (a snapshot create that died before its record, a delete's rename).
    const leftover = join(dir, 'share', partFile(randomUUID(), ownerTag(s.hostId, 'nfs')));
    await writeFile(leftover, '');

    // Whether each read of storage came before the services were ready to serve.
    let ready = false;
    const readBeforeReady: boolean[] = [];
    const scan = NfsDriver.prototype.scan;
    vi.spyOn(NfsDriver.prototype, 'scan').mockImplementation(function (this: NfsDriver) {
      readBeforeReady.push(!ready);
      return scan.call(this);
    });
    const after = await startAfterKill();
    ready = true;
    expect(after.recovery).toEqual({ resolved: [], removed: [], failed: [], strays: [], unscanned: [] });

    const report = await after.recoveredAfterReady;
    expect(readBeforeReady).toEqual([false]);
    expect(report.removed).toEqual([expect.objectContaining({ kind: 'partial-volume', where: leftover })]);
    expect(existsSync(leftover)).toBe(false);
    expect(await after.backends.scanOwed('nfs')).toBe(false);
  });

  it('keeps a leftover of a resource an operation used since the start, and owes it to the next start', async () => {
    const s = await startAfterKill();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const leftover = join(dir, 'share', infoTempFile(volume.id, ownerTag(s.hostId, 'nfs')));
    await writeFile(leftover, '');

    const after = await startAfterKill();
    await after.volumes.extend(volume.id, 2);
    const report = await after.recoveredAfterReady;
    expect(report.removed).toEqual([]);
    expect(existsSync(leftover)).toBe(true);
    expect(await after.backends.scanOwed('nfs')).toBe(true);

    await after.close(true);
    services = await openServices(config);
    expect(existsSync(leftover)).toBe(false);
  });

  it('still settles a record an operation left transient before serving', async () => {
    const s = await startAfterKill();
    const made = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.index.putVolume({ ...made, status: 'creating' });
    const after = await startAfterKill();
    expect(after.volumes.get(made.id).status).toBe('available');
    expect(after.recovery.resolved).toEqual([{ id: made.id, kind: 'volume', from: 'creating', to: 'available' }]);
  });
});
