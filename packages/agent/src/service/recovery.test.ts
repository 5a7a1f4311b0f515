import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackendError, type SnapshotRecord, type VolumeRecord } from '@kindling/protocol';
import { parseConfig, type AgentConfig } from '../config.js';
import type { Leftover } from '../drivers/driver.js';
import { NfsDriver } from '../drivers/nfs/driver.js';
import { infoTempFile, ownerTag, partFile } from '../drivers/nfs/names.js';
import { IndexStore } from '../index/store.js';
import { Metrics } from '../rpc/metrics.js';
import { openServices, type Services } from '../services.js';
import { STOPPED, nothingToRecover, recoverBackend, recoveryLines } from './recovery.js';

// A crash leaves records in a transient status; the next start settles each against real storage
// (NFS driver files and qemu-img in a temp dir), finishes reverts, and removes leftovers.
let dir: string;
let config: AgentConfig;
let services: Services | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-recovery-'));
  config = parseConfig({ dataDir: join(dir, 'data'), backends: [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')] }] }, dir);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await services?.close();
  services = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** The services once started, with what a start runs after ready done too (it reads storage as the tests do). */
const open = async (): Promise<Services> => {
  services = await openServices(config);
  await services.recoveredAfterReady;
  return services;
};
const restart = async (): Promise<Services> => {
  await services?.close();
  return open();
};

/** Rewrites records, with the agent stopped, as a crash mid-operation would have left them. */
async function leave(...records: (VolumeRecord | SnapshotRecord)[]): Promise<void> {
  await services?.close();
  services = undefined;
  const index = await IndexStore.open(join(config.dataDir, 'index'));
  for (const r of records) await ('volumeId' in r ? index.putSnapshot(r) : index.putVolume(r));
  await index.close();
}

const share = () => join(dir, 'share');
const activePath = (v: VolumeRecord) => join(share(), String(v.location.activeFile));
const qemuIo = (v: VolumeRecord, command: string) =>
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', command, activePath(v)], { encoding: 'utf8' });

describe('recovery of interrupted operations at start', () => {
  it('a create whose file is published becomes available; one whose file is not becomes error', async () => {
    const s = await open();
    const made = await s.volumes.create({ backend: 'nfs', size: 1 });
    const lost = s.volumes.draft(randomUUID(), 'nfs', { size: 1 });
    await leave({ ...made, status: 'creating' }, lost);

    const after = await open();
    expect(after.volumes.get(made.id).status).toBe('available');
    expect(after.volumes.get(lost.id)).toMatchObject({ status: 'error', error: { code: 'BACKEND_ERROR', message: expect.stringMatching(/create/) } });
    expect(after.recovery.resolved).toHaveLength(2);
  });

  it('a create whose published file is smaller than the record is error, not available', async () => {
    const s = await open();
    const made = await s.volumes.create({ backend: 'nfs', size: 1 });
    await leave({ ...made, size: 2, status: 'creating' });

    const after = await open();
    expect(after.volumes.get(made.id)).toMatchObject({ status: 'error', error: { message: expect.stringMatching(/create.*1 GiB of 2/) } });
  });

  it('a delete that got through is forgotten; one that did not is error_deleting, and a retry finishes it', async () => {
    const s = await open();
    const kept = await s.volumes.create({ backend: 'nfs', size: 1 });
    const gone = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.backends.usable('nfs').deleteVolume({ id: gone.id, size: 1, location: gone.location });
    await leave({ ...kept, status: 'deleting' }, { ...gone, status: 'deleting' });

    const after = await open();
    expect(after.volumes.get(kept.id).status).toBe('error_deleting');
    expect(() => after.volumes.get(gone.id)).toThrow(/no volume/);
    await after.volumes.delete(kept.id);
    expect((await after.volumes.list({ backend: 'nfs' })).volumes).toEqual([]);
  });

  it('an interrupted extend settles in the size storage reports', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    // The resize got through on storage before the agent died.
    execFileSync('qemu-img', ['resize', '-f', 'qcow2', activePath(volume), '2G']);
    await leave({ ...volume, status: 'extending' });

    const after = await open();
    expect(after.volumes.get(volume.id)).toMatchObject({ status: 'available', size: 2, error: null });
  });

  it('an interrupted revert is finished at start: the data is the snapshot\'s and the volume available', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    qemuIo(volume, 'write -P 0xaa 0 64k');
    const snapshot = await s.snapshots.create({ volumeId: volume.id });
    const before = s.volumes.get(volume.id);
    qemuIo(before, 'write -P 0xbb 0 64k');
    await leave({ ...before, status: 'reverting', revertingTo: snapshot.id });

    const after = await open();
    const reverted = after.volumes.get(volume.id);
    expect(reverted).toMatchObject({ status: 'available', error: null });
    expect(reverted.revertingTo).toBeUndefined();
    expect(qemuIo(reverted, 'read -P 0xaa 0 64k')).not.toMatch(/verification failed/);
    expect(after.recovery.resolved).toEqual([{ id: volume.id, kind: 'volume', from: 'reverting', to: 'available' }]);
  });

  it('a revert that cannot be finished leaves the volume in error with the failure kept', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snapshot = await s.snapshots.create({ volumeId: volume.id });
    const orphan = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.index.putVolume({ ...s.volumes.get(volume.id), status: 'reverting', revertingTo: snapshot.id });
    await s.index.putVolume({ ...orphan, status: 'reverting', revertingTo: 'a-snapshot-that-is-gone' });
    vi.spyOn(s.backends.get('nfs'), 'revertToSnapshot').mockRejectedValue(new BackendError('qemu-img rebase failed'));

    const report = await recoverBackend(s, s.backends.get('nfs'));
    expect(s.volumes.get(volume.id)).toMatchObject({
      status: 'error',
      error: { code: 'BACKEND_ERROR', message: 'qemu-img rebase failed', details: { volumeId: volume.id, snapshotId: snapshot.id } },
    });
    expect(s.volumes.get(volume.id).revertingTo).toBeUndefined();
    expect(s.volumes.get(orphan.id)).toMatchObject({ status: 'error', error: { message: expect.stringMatching(/snapshot is gone/) } });
    expect(report.resolved.map((r) => r.to)).toEqual(['error', 'error']);
  });

  it('a snapshot create listed by the scan becomes available; one not listed becomes error', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const made = await s.snapshots.create({ volumeId: volume.id });
    const never: SnapshotRecord = { ...made, id: '0b4a0b9e-36f4-4d36-a3a5-3c5bb1d4c0aa', status: 'creating' };
    await leave({ ...made, status: 'creating' }, never);

    const after = await open();
    expect(after.snapshots.get(made.id).status).toBe('available');
    expect(after.snapshots.get(never.id)).toMatchObject({ status: 'error', error: { code: 'BACKEND_ERROR' } });
  });

  it('a snapshot delete that got through is forgotten and its volume points at its new chain; one that did not is error_deleting', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const kept = await s.snapshots.create({ volumeId: volume.id });
    const gone = await s.snapshots.create({ volumeId: volume.id });
    const withBoth = s.volumes.get(volume.id);
    const { volume: location } = await s.backends
      .usable('nfs')
      .deleteSnapshot({ id: gone.id, volumeId: volume.id, volumeSize: 1, location: gone.location }, {
        id: volume.id,
        size: 1,
        location: withBoth.location,
      });
    expect(location).not.toEqual(withBoth.location);
    await leave({ ...kept, status: 'deleting' }, { ...gone, status: 'deleting' }, withBoth);

    const after = await open();
    expect(after.snapshots.get(kept.id).status).toBe('error_deleting');
    expect(() => after.snapshots.get(gone.id)).toThrow(/no snapshot/);
    expect(after.volumes.get(volume.id).location).toEqual(location);
  });

  it('a backend whose scan fails leaves its transient records in error, and says so', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.index.putVolume({ ...volume, status: 'creating' });
    vi.spyOn(s.backends.get('nfs'), 'scan').mockRejectedValue(new Error('share went away'));

    const report = await recoverBackend(s, s.backends.get('nfs'));
    expect(s.volumes.get(volume.id)).toMatchObject({ status: 'error', error: { message: expect.stringMatching(/could not be read/) } });
    expect(report.unscanned).toEqual([{ backend: 'nfs', error: 'share went away' }]);
    const [nfs] = await s.backends.readiness();
    expect(nfs!.warnings).toEqual([expect.stringMatching(/last scan of storage failed: share went away/)]);
  });

  it('a backend recovered while clients are connected pushes every record it settles (a client never misses one, nor its place in the change sequence)', async () => {
    const s = await open();
    const made = await s.volumes.create({ backend: 'nfs', size: 1 });
    const gone = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snap = await s.snapshots.create({ volumeId: made.id });
    await s.backends.usable('nfs').deleteVolume({ id: gone.id, size: 1, location: gone.location });
    await s.index.putVolume({ ...gone, status: 'deleting' });
    await s.index.putSnapshot({ ...snap, status: 'creating' });
    const pushed: string[] = [];
    s.events.subscribe((e) => {
      if (e.event === 'volume' || e.event === 'snapshot') pushed.push(`${e.event} ${e.resource.id} ${e.resource.status}`);
    });

    await recoverBackend(s, s.backends.get('nfs'));
    expect(pushed).toEqual(expect.arrayContaining([`snapshot ${snap.id} available`, `volume ${gone.id} deleted`]));
  });
});

describe('leftovers and strays found at start', () => {
  const leftover = (id: string, where: string): Leftover => ({ kind: 'temp-snapshot', id, where });

  it('removes every leftover with its resource locked; a failed removal is reported, not fatal', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.index.putVolume({ ...volume, status: 'creating' });
    const driver = s.backends.get('nfs');
    const scan = driver.scan.bind(driver);
    const found = [leftover(volume.id, 'share/volume-a.tmp-snap'), leftover('another-id', 'share/stuck')];
    vi.spyOn(driver, 'scan').mockImplementation(async () => ({ ...(await scan()), leftovers: found }));
    const lockedDuringRemoval: boolean[] = [];
    vi.spyOn(driver, 'removeLeftover').mockImplementation(async (l) => {
      // Anything else wanting the resource's lock must wait until the removal is over.
      let waited = true;
      void s.locks.with([l.id], async () => {
        waited = false;
      });
      await new Promise((resolve) => setImmediate(resolve));
      lockedDuringRemoval.push(waited);
      if (l.where === 'share/stuck') throw new Error('EBUSY');
    });

    const report = await recoverBackend(s, s.backends.get('nfs'));
    expect(lockedDuringRemoval).toEqual([true, true]);
    expect(report.removed).toEqual([{ ...found[0], backend: 'nfs' }]);
    expect(report.failed).toEqual([{ ...found[1], backend: 'nfs', error: 'EBUSY' }]);
    expect(s.volumes.get(volume.id).status).toBe('available');

    const [nfs] = await s.backends.readiness();
    expect(nfs).toMatchObject({ ready: true, findings: { leftovers: 1, strays: 0 } });
    expect(nfs!.warnings).toEqual([expect.stringMatching(/1 leftover\(s\).*could not be removed.*share\/stuck/)]);
    const metrics = await new Metrics().render([], await s.backends.readiness(), { sessions: 0, requestsInFlight: 0, commandsRunning: 0, commandsWaiting: 0 });
    expect(metrics).toMatch(/^kindling_storage_leftovers\{backend="nfs"\} 1$/m);
    expect(recoveryLines(report)).toEqual([
      `recovered volume ${volume.id}: creating -> available`,
      `removed a leftover temp-snapshot of ${volume.id} on nfs: share/volume-a.tmp-snap`,
      'could not remove a leftover temp-snapshot of another-id on nfs: share/stuck: EBUSY',
    ]);
  });

  it('finishes an interrupted revert before removing leftovers, and leaves alone what the revert took in', async () => {
    const s = await open();
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const snapshot = await s.snapshots.create({ volumeId: volume.id });
    await s.index.putVolume({ ...s.volumes.get(volume.id), status: 'reverting', revertingTo: snapshot.id });
    const driver = s.backends.get('nfs');
    const scan = driver.scan.bind(driver);
    const revert = driver.revertToSnapshot.bind(driver);
    // Storage as the crash left it: the revert's new overlay, not yet renamed in, reads as a leftover.
    const overlay: Leftover = { kind: 'temp-file', id: volume.id, where: 'share/volume-a.revert' };
    let reverted = false;
    vi.spyOn(driver, 'scan').mockImplementation(async () => ({ ...(await scan()), leftovers: reverted ? [] : [overlay] }));
    vi.spyOn(driver, 'revertToSnapshot').mockImplementation(async (v, snap) => {
      reverted = true;
      return revert(v, snap);
    });
    const remove = vi.spyOn(driver, 'removeLeftover');

    const report = await recoverBackend(s, s.backends.get('nfs'));
    expect(s.volumes.get(volume.id).status).toBe('available');
    expect(remove).not.toHaveBeenCalled();
    expect(report.removed).toEqual([]);
  });

  it('reports strays in the report, /readyz and the metrics, and never removes them', async () => {
    const s = await open();
    const driver = s.backends.get('nfs');
    const scan = driver.scan.bind(driver);
    const strays = [{ where: join(share(), 'volume-not-a-uuid'), reason: 'not a Kindling name' }];
    vi.spyOn(driver, 'scan').mockImplementation(async () => ({ ...(await scan()), strays }));
    const remove = vi.spyOn(driver, 'removeLeftover');

    const report = await recoverBackend(s, s.backends.get('nfs'));
    expect(remove).not.toHaveBeenCalled();
    expect(report.strays).toEqual([{ ...strays[0], backend: 'nfs' }]);
    expect(recoveryLines(report)).toEqual([`left alone on nfs, not Kindling's: ${strays[0]!.where} (not a Kindling name)`]);
    const [nfs] = await s.backends.readiness();
    expect(nfs).toMatchObject({ ready: true, findings: { leftovers: 0, strays: 1 } });
    expect(nfs!.warnings).toEqual([expect.stringMatching(/1 item\(s\) on storage that are not Kindling's.*volume-not-a-uuid/)]);
    expect(await new Metrics().render([], [nfs!], { sessions: 0, requestsInFlight: 0, commandsRunning: 0, commandsWaiting: 0 })).toMatch(/^kindling_storage_strays\{backend="nfs"\} 1$/m);
  });

  it('a backend not ready at a clean stop is scanned at the next start all the same', async () => {
    const s = await open();
    const leftover = join(share(), partFile(randomUUID(), ownerTag(s.hostId, 'nfs')));
    await writeFile(leftover, '');
    // Immutable, the share cannot be written: the backend is not ready as the agent stops.
    execFileSync('chattr', ['+i', share()]);
    try {
      await s.close(true);
    } finally {
      execFileSync('chattr', ['-i', share()]);
    }
    services = undefined;
    await open();
    expect(existsSync(leftover)).toBe(false);
  });

  it('a clean start reports nothing and warns of nothing', async () => {
    const s = await restart();
    expect(s.recovery).toEqual(nothingToRecover());
    const [nfs] = await s.backends.readiness();
    expect(nfs).toMatchObject({ ready: true, findings: { leftovers: 0, strays: 0 } });
    expect(nfs!.warnings).toBeUndefined();
  });
});

// Start after a kill is proportional to what was in flight: storage is read before ready only for a
// backend with records an operation left transient (or a scan owed); the rest is the background check's.
/** The services as a start after a kill opens them (the last stop was not clean). */
const startAfterKill = async (): Promise<Services> => {
  await services?.close(false);
  return (services = await openServices(config));
};

describe('recoveryLines', () => {
  it('words 100,000 findings at once (a share that came back empty) in one pass', () => {
    const report = nothingToRecover();
    for (let i = 0; i < 100_000; i++) report.missingFromStorage.push({ kind: 'volume', id: `v${i}`, status: 'available', backend: 'nfs' });
    const started = performance.now();
    const [line] = recoveryLines(report);
    expect(line).toMatch(/^the index has what nfs lacks: volume v0, volume v1, /);
    // A copy of the list per finding took minutes here.
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

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
    // Every read of storage, whole (scan) or paged, goes through scanPages.
    const scanPages = NfsDriver.prototype.scanPages;
    vi.spyOn(NfsDriver.prototype, 'scanPages').mockImplementation(function (this: NfsDriver, signal?: AbortSignal) {
      readBeforeReady.push(!ready);
      return scanPages.call(this, signal);
    });
    const after = await startAfterKill();
    ready = true;
    expect(after.recovery).toEqual(nothingToRecover());

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

  it('reads storage once after ready, after a kill or a clean stop, and reports where it and the index disagree (log lines, readiness, metrics)', async () => {
    const s = await startAfterKill();
    const lost = await s.volumes.create({ backend: 'nfs', size: 1 });
    await s.volumes.create({ backend: 'nfs', size: 1 });
    await rm(activePath(lost));
    let reads = 0;
    const scanPages = NfsDriver.prototype.scanPages;
    vi.spyOn(NfsDriver.prototype, 'scanPages').mockImplementation(function (this: NfsDriver, signal?: AbortSignal) {
      reads++;
      return scanPages.call(this, signal);
    });
    for (const start of [startAfterKill, restart]) {
      reads = 0;
      const after = await start();
      const report = await after.recoveredAfterReady;
      expect(reads).toBe(1);
      expect(report.missingFromStorage).toEqual([{ kind: 'volume', id: lost.id, status: 'available', backend: 'nfs' }]);
      expect(recoveryLines(report)).toEqual([`the index has what nfs lacks: volume ${lost.id}`]);
      const [nfs] = await after.backends.readiness();
      expect(nfs).toMatchObject({ ready: true, findings: { missingFromStorage: 1, missingFromIndex: 0 } });
      const load = { sessions: 0, requestsInFlight: 0, commandsRunning: 0, commandsWaiting: 0 };
      expect(await new Metrics().render([], [nfs!], load)).toMatch(/^kindling_index_not_on_storage\{backend="nfs"\} 1$/m);
    }
  });

  it('a stop never waits for the check after ready: the check ends, says so, and owes its scan to the next start, even after a clean stop', async () => {
    const s = await startAfterKill();
    for (let i = 0; i < 3; i++) await s.volumes.create({ backend: 'nfs', size: 1 });
    const leftover = join(dir, 'share', partFile(randomUUID(), ownerTag(s.hostId, 'nfs')));
    await writeFile(leftover, '');

    // The check is under way (the scan has begun) when the stop comes.
    let stopCame!: () => void;
    const stopComes = new Promise<void>((resolve) => (stopCame = resolve));
    const scanPages = NfsDriver.prototype.scanPages;
    const spy = vi.spyOn(NfsDriver.prototype, 'scanPages').mockImplementation(async function* (this: NfsDriver, signal?: AbortSignal) {
      await stopComes;
      yield* scanPages.call(this, signal);
    });
    const after = await startAfterKill();
    const stopped = after.close(true);
    stopCame();
    await stopped;
    services = undefined;
    const report = await after.recoveredAfterReady;
    expect(report.removed).toEqual([]);
    expect(recoveryLines(report)).toEqual([`could not scan nfs to recover it: ${STOPPED}`]);
    expect(existsSync(leftover)).toBe(true);

    spy.mockRestore();
    const next = (services = await openServices(config));
    expect(next.recovery.removed).toEqual([expect.objectContaining({ kind: 'partial-volume', where: leftover })]);
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
