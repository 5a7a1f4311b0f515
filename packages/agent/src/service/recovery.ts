import {
  asKindlingError,
  messageOf,
  toErrorInfo,
  type ErrorInfo,
  type KindlingError,
  type SnapshotRecord,
  type VolumeRecord,
} from '@kindling/protocol';
import type { Driver, Leftover, ScanResult, Stray } from '../drivers/driver.js';
import { snapshotRef, volumeRef, type ServiceContext } from './context.js';
import { now } from './lifecycle.js';
import { named } from './findings.js';
import { Comparison, compareWithIndex, heldBefore, type IndexMismatch } from './reconcile.js';
import {
  TRANSIENT_SNAPSHOT_STATUSES,
  TRANSIENT_VOLUME_STATUSES,
  isTransientSnapshot,
  isTransientVolume,
  type TransientVolumeStatus,
} from './status.js';

type On<T> = T & { backend: string };

export interface RecoveryReport {
  /** Records left in a transient status, and what each became (`deleted`: forgotten). */
  resolved: { id: string; kind: 'volume' | 'snapshot'; from: string; to: string }[];
  /** Kindling's own leftovers of interrupted operations, removed. */
  removed: On<Leftover>[];
  /** Leftovers whose removal failed: kept, reported by /readyz and the metrics, and tried again at the next start. */
  failed: On<Leftover & { error: string }>[];
  /** What storage holds that is not provably Kindling's: reported, never removed. */
  strays: On<Stray>[];
  /** Backends whose storage could not be read: their transient records went to error. */
  unscanned: { backend: string; error: string }[];
  /** On storage, not in the index (`reindex` adopts them). */
  missingFromIndex: On<IndexMismatch['missingFromIndex'][number]>[];
  /** Settled in the index, not on storage: reported only, a human decides. */
  missingFromStorage: On<IndexMismatch['missingFromStorage'][number]>[];
}

/** Why a check after ready did not read storage: the agent stopped first. */
export const STOPPED = 'the agent stopped before its storage check after ready was done; the next start scans it';

const interrupted = (what: string, more = ''): ErrorInfo => ({
  code: 'BACKEND_ERROR',
  message: `the agent stopped while the ${what} was in progress${more}`,
});

export const nothingToRecover = (): RecoveryReport => ({
  resolved: [],
  removed: [],
  failed: [],
  strays: [],
  unscanned: [],
  missingFromIndex: [],
  missingFromStorage: [],
});

/** Adds one backend's report to another. */
export function addReport(to: RecoveryReport, from: RecoveryReport): void {
  to.resolved.push(...from.resolved);
  to.removed.push(...from.removed);
  to.failed.push(...from.failed);
  to.strays.push(...from.strays);
  to.unscanned.push(...from.unscanned);
  to.missingFromIndex.push(...from.missingFromIndex);
  to.missingFromStorage.push(...from.missingFromStorage);
}

/** Adds where storage and the index disagree to the report, and to the backend's findings (metrics): after the leftovers' note, which replaces them. */
function noteMismatch(ctx: ServiceContext, report: RecoveryReport, backend: string, mismatch: IndexMismatch): void {
  report.missingFromIndex.push(...mismatch.missingFromIndex.map((m) => ({ ...m, backend })));
  report.missingFromStorage.push(...mismatch.missingFromStorage.map((m) => ({ ...m, backend })));
  ctx.backends.noteFindings(backend, {
    missingFromIndex: mismatch.missingFromIndex.length,
    missingFromStorage: mismatch.missingFromStorage.length,
  });
}

/** What storage holds of one volume: published volumes only (the final name means complete). */
export type OnStorage = ScanResult['volumes'][number];

/** The volume as one scan of storage lists it, if it does. */
export async function findOnStorage(driver: Driver, id: string): Promise<OnStorage | undefined> {
  return (await driver.scan()).volumes.find((v) => v.id === id);
}

/**
 * The one rule for settling a volume against storage: published at (at least) the recorded size, it
 * is whole, at the size storage holds, available (in-use while connected); otherwise null.
 */
export function settledOnStorage(ctx: ServiceContext, volume: VolumeRecord, found: OnStorage | undefined): VolumeRecord | null {
  if (!found || found.size < volume.size) return null;
  const status = ctx.index.connectionsOf(volume.id).length > 0 ? 'in-use' : 'available';
  const record: VolumeRecord = { ...volume, status, size: found.size, location: found.location, error: null, updatedAt: now() };
  delete record.revertingTo;
  return record;
}

/**
 * Resolves, against what its storage holds, every record of one backend a crash left in a transient
 * status (the final name on storage means the operation finished), finishes interrupted reverts, then
 * removes the leftovers the scan found. Runs when the backend has started and before it takes any
 * operation (at the agent's start, or when a backend that was not ready comes), so no operation of its
 * runs meanwhile and whatever the scan finds besides volumes and snapshots is provably a leftover.
 */
export async function recoverBackend(ctx: ServiceContext, driver: Driver): Promise<RecoveryReport> {
  const report = nothingToRecover();
  const backend = driver.name;
  const scan = async (): Promise<ScanResult | undefined> => {
    try {
      return await driver.scan();
    } catch (err) {
      report.unscanned.push({ backend, error: messageOf(err) });
      ctx.backends.noteFindings(backend, { scanError: messageOf(err) });
      return undefined;
    }
  };
  let found = await scan();
  if (!found) await ctx.backends.oweScan(backend);

  // At most one operation per volume chain runs at a time (they share the volume's lock), so the
  // order below never settles a snapshot from a scan that an interrupted revert makes stale.
  // Only what was in flight is read (the index keeps records by status), not every record.
  for (const snapshot of ctx.index.snapshotsInStatus(backend, TRANSIENT_SNAPSHOT_STATUSES).filter(isTransientSnapshot)) {
    const to = await resolveSnapshot(ctx, snapshot, found);
    report.resolved.push({ id: snapshot.id, kind: 'snapshot', from: snapshot.status, to });
  }
  let reverted = false;
  for (const volume of ctx.index.volumesInStatus(backend, TRANSIENT_VOLUME_STATUSES).filter(isTransientVolume)) {
    const to = found ? await resolveVolume(ctx, volume, driver, found) : await settle(ctx, volume, unreadable(volume));
    reverted ||= volume.status === 'reverting';
    report.resolved.push({ id: volume.id, kind: 'volume', from: volume.status, to });
  }
  // A finished revert changed storage: what is left over is read again.
  if (found && reverted) found = await scan();
  if (!found) return report;

  await removeLeftovers(ctx, driver, found, report);
  // No operation of this backend runs yet: the records as recovery left them are the ones to compare.
  noteMismatch(ctx, report, backend, compareWithIndex(ctx, heldBefore(ctx, backend), found));
  // A leftover still there is looked for again at the next start, even one after a clean stop.
  if (report.failed.length > 0) await ctx.backends.oweScan(backend);
  else await ctx.backends.scanPaid(backend);
  return report;
}

/**
 * The check after ready at a start that read no storage before it (a clean stop, or a kill with nothing
 * in flight), in one read of storage: it compares storage with the index, and removes leftovers.
 * Storage is read while operations run, so a leftover is removed only when no operation has asked for
 * its resource since the start (`asked`, from the service's locks: then it is provably from before the
 * start, and stays so under the lock its removal takes). The others are kept and owed a scan at the
 * next start, where nothing runs. A stop (`stop` aborts) never waits for the check: the scan ends
 * between files, and the whole check is owed to the next start, which the report says.
 */
export async function recoverAfterReady(
  ctx: ServiceContext,
  driver: Driver,
  asked: ReadonlySet<string>,
  stop?: AbortSignal,
): Promise<RecoveryReport> {
  const report = nothingToRecover();
  const comparison = new Comparison(ctx, heldBefore(ctx, driver.name));
  // Compared a page at a time: what is kept of storage is the ids found, its leftovers and strays.
  const rest: ScanResult = { volumes: [], snapshots: [], leftovers: [], strays: [] };
  try {
    for await (const page of driver.scanPages(stop)) {
      comparison.add(page);
      rest.leftovers.push(...page.leftovers);
      rest.strays.push(...page.strays);
    }
  } catch (err) {
    const stopped = stop?.aborted === true;
    report.unscanned.push({ backend: driver.name, error: stopped ? STOPPED : messageOf(err) });
    if (!stopped) ctx.backends.noteFindings(driver.name, { scanError: messageOf(err) });
    await ctx.backends.oweScan(driver.name);
    return report;
  }
  const mismatch = comparison.result();
  const kept = await removeLeftovers(ctx, driver, rest, report, asked, stop);
  noteMismatch(ctx, report, driver.name, mismatch);
  if (kept > 0 || report.failed.length > 0) await ctx.backends.oweScan(driver.name);
  return report;
}

/**
 * Removes the leftovers a scan found, each under its resource's lock, but those of `busy` resources
 * and all once `stop` aborts; returns how many it kept.
 */
async function removeLeftovers(
  ctx: ServiceContext,
  driver: Driver,
  found: ScanResult,
  report: RecoveryReport,
  busy: ReadonlySet<string> = new Set(),
  stop?: AbortSignal,
): Promise<number> {
  const backend = driver.name;
  const failed: Leftover[] = [];
  let kept = 0;
  for (const leftover of found.leftovers) {
    // Checked in the same turn as the lock is asked for: an operation asking later runs after the removal.
    if (busy.has(leftover.id) || stop?.aborted) {
      kept++;
      continue;
    }
    try {
      await ctx.locks.with([leftover.id], () => driver.removeLeftover(leftover));
      report.removed.push({ ...leftover, backend });
    } catch (err) {
      failed.push(leftover);
      report.failed.push({ ...leftover, backend, error: messageOf(err) });
    }
  }
  report.strays.push(...found.strays.map((s) => ({ ...s, backend })));
  ctx.backends.noteFindings(backend, { leftovers: failed, strays: found.strays });
  return kept;
}

/** What a record becomes when storage could not be read to settle it. */
function unreadable(volume: VolumeRecord): Partial<VolumeRecord> {
  const deleting = volume.status === 'deleting';
  return {
    status: deleting ? 'error_deleting' : 'error',
    error: interrupted(deleting ? 'delete' : 'operation', '; storage could not be read to settle it'),
  };
}

/** Writes the volume's end state (a revert's snapshot is no longer named) and returns its status. */
async function settle(ctx: ServiceContext, volume: VolumeRecord, changes: Partial<VolumeRecord>): Promise<string> {
  const record: VolumeRecord = { ...volume, ...changes, updatedAt: now() };
  delete record.revertingTo;
  await ctx.index.putVolume(record);
  ctx.events.publish({ event: 'volume', resource: record });
  return record.status;
}

async function resolveVolume(
  ctx: ServiceContext,
  volume: VolumeRecord & { status: TransientVolumeStatus },
  driver: Driver,
  scan: ScanResult,
): Promise<string> {
  const found = scan.volumes.find((v) => v.id === volume.id);
  const whole = settledOnStorage(ctx, volume, found);
  switch (volume.status) {
    case 'creating':
    case 'extending':
      // Published means complete, but a file smaller than recorded is not the volume asked for; an
      // extend's size on storage is the truth (the record still has the size before the extend).
      if (whole) return settle(ctx, volume, whole);
      return settle(ctx, volume, {
        status: 'error',
        error: interrupted(volume.status === 'creating' ? 'create' : 'extend', found ? `; storage holds ${found.size} GiB of ${volume.size}` : '; the volume is not on storage'),
      });
    case 'deleting':
      // Drivers' deletes are resumable: a retry of error_deleting finishes the job.
      if (found) return settle(ctx, volume, { status: 'error_deleting', error: interrupted('delete') });
      await ctx.index.deleteVolume(volume);
      ctx.events.publish({ event: 'volume', resource: { ...volume, status: 'deleted', updatedAt: now() } });
      return 'deleted';
    case 'reverting':
      return finishRevert(ctx, volume, driver, ctx.index.connectionsOf(volume.id).length > 0 ? 'in-use' : 'available');
  }
}

/**
 * A revert that failed after its snapshot's storage went (an LVM merge consumes it; the driver says
 * `details.snapshotPresent: false`): the snapshot no longer reads available but `error`, to be deleted.
 */
export async function settleRevertSnapshot(ctx: ServiceContext, snapshot: SnapshotRecord, err: KindlingError): Promise<void> {
  if (err.details.snapshotPresent !== false) return;
  const failed: SnapshotRecord = { ...snapshot, status: 'error', error: toErrorInfo(err), updatedAt: now() };
  await ctx.index.putSnapshot(failed);
  ctx.events.publish({ event: 'snapshot', resource: failed });
}

/** Drivers' reverts are resumable: called again, the revert finishes; a failure leaves the volume in error. */
async function finishRevert(ctx: ServiceContext, volume: VolumeRecord, driver: Driver, settled: 'available' | 'in-use') {
  const snapshot = volume.revertingTo === undefined ? undefined : ctx.index.getSnapshot(volume.revertingTo);
  if (!snapshot) return settle(ctx, volume, { status: 'error', error: interrupted('revert', '; its snapshot is gone') });
  try {
    const location = await ctx.locks.with([volume.id, snapshot.id], () =>
      driver.revertToSnapshot(volumeRef(volume), snapshotRef(snapshot)),
    );
    return await settle(ctx, volume, { status: settled, location, error: null });
  } catch (err) {
    const error = asKindlingError(err);
    Object.assign(error.details, { volumeId: volume.id, snapshotId: snapshot.id });
    await settleRevertSnapshot(ctx, snapshot, error);
    return settle(ctx, volume, { status: 'error', error: toErrorInfo(error) });
  }
}

async function resolveSnapshot(ctx: ServiceContext, snapshot: SnapshotRecord, scan: ScanResult | undefined): Promise<string> {
  const found = scan?.snapshots.some((s) => s.id === snapshot.id) ?? false;
  // The volume's location follows its chain (NFS's active overlay), which the interrupted operation may have changed.
  const listed = scan?.volumes.find((v) => v.id === snapshot.volumeId);
  const current = ctx.index.getVolume(snapshot.volumeId);
  const volume = listed && current ? { ...current, location: listed.location, updatedAt: now() } : undefined;
  const published = (record: SnapshotRecord): string => {
    ctx.events.publish({ event: 'snapshot', resource: record });
    if (volume) ctx.events.publish({ event: 'volume', resource: volume });
    return record.status;
  };
  const save = async (changes: Partial<SnapshotRecord>): Promise<string> => {
    const record = { ...snapshot, ...changes, updatedAt: now() };
    await ctx.index.putSnapshot(record, volume);
    return published(record);
  };
  if (!scan) {
    const deleting = snapshot.status === 'deleting';
    return save({
      status: deleting ? 'error_deleting' : 'error',
      error: interrupted(deleting ? 'snapshot delete' : 'snapshot', '; storage could not be read to settle it'),
    });
  }
  if (snapshot.status === 'creating') {
    return save(found ? { status: 'available', error: null } : { status: 'error', error: interrupted('snapshot') });
  }
  if (found) return save({ status: 'error_deleting', error: interrupted('snapshot delete') });
  await ctx.index.deleteSnapshot(snapshot, volume);
  return published({ ...snapshot, status: 'deleted', updatedAt: now() });
}

/** The report as log lines, one per finding, for the agent's start and `reindex`. */
export function recoveryLines(report: RecoveryReport): string[] {
  return [
    ...report.unscanned.map((u) => `could not scan ${u.backend} to recover it: ${u.error}`),
    ...report.resolved.map((r) => `recovered ${r.kind} ${r.id}: ${r.from} -> ${r.to}`),
    ...report.removed.map((l) => `removed a leftover ${l.kind} of ${l.id} on ${l.backend}: ${l.where}`),
    ...report.failed.map((l) => `could not remove a leftover ${l.kind} of ${l.id} on ${l.backend}: ${l.where}: ${l.error}`),
    ...report.strays.map((s) => `left alone on ${s.backend}, not Kindling's: ${s.where} (${s.reason})`),
    ...byBackend(report.missingFromIndex).map(([backend, ids]) => `${backend} holds what the index lacks (run reindex): ${named(ids, 20)}`),
    ...byBackend(report.missingFromStorage).map(([backend, ids]) => `the index has what ${backend} lacks: ${named(ids, 20)}`),
  ];
}

// Appended in place: a copy per item took minutes for a share that came back empty at 100,000 volumes.
const byBackend = (items: On<{ kind: string; id: string }>[]): [string, string[]][] => {
  const out = new Map<string, string[]>();
  for (const m of items) {
    const named = out.get(m.backend) ?? [];
    named.push(`${m.kind} ${m.id}`);
    out.set(m.backend, named);
  }
  return [...out];
};
