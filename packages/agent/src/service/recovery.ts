import { asKindlingError, messageOf, toErrorInfo, type ErrorInfo, type SnapshotRecord, type VolumeRecord } from '@kindling/protocol';
import type { Driver, Leftover, ScanResult, Stray } from '../drivers/driver.js';
import { snapshotRef, volumeRef, type ServiceContext } from './context.js';
import { now } from './lifecycle.js';
import { isTransientSnapshot, isTransientVolume, type TransientVolumeStatus } from './status.js';

type On<T> = T & { backend: string };

export interface RecoveryReport {
  /** Records left in a transient status, and what each became (`deleted`: forgotten). */
  resolved: { id: string; kind: 'volume' | 'snapshot'; from: string; to: string }[];
  /** Kindling's own leftovers of interrupted operations, removed. */
  removed: On<Leftover>[];
  /** Leftovers whose removal failed: kept, and reported by /readyz and the metrics. */
  failed: On<Leftover & { error: string }>[];
  /** What storage holds that is not provably Kindling's: reported, never removed. */
  strays: On<Stray>[];
  /** Backends whose storage could not be read: their transient records went to error. */
  unscanned: { backend: string; error: string }[];
}

const interrupted = (what: string, more = ''): ErrorInfo => ({
  code: 'BACKEND_ERROR',
  message: `the agent stopped while the ${what} was in progress${more}`,
});


/**
 * Runs at start, before serving, with no operation running. Resolves every record a crash left in a
 * transient status against what storage holds (the final name on storage means the operation
 * finished), finishes interrupted reverts, then removes the leftovers the scans found. Nothing
 * transient survives a restart.
 */
export const nothingToRecover = (): RecoveryReport => ({ resolved: [], removed: [], failed: [], strays: [], unscanned: [] });

export async function recoverTransient(ctx: ServiceContext): Promise<RecoveryReport> {
  const report = nothingToRecover();
  const drivers = new Map(ctx.backends.drivers().map((d) => [d.name, d]));
  const scans = new Map<string, ScanResult>();
  const scan = async (driver: Driver) => {
    try {
      scans.set(driver.name, await driver.scan());
    } catch (err) {
      scans.delete(driver.name);
      report.unscanned.push({ backend: driver.name, error: messageOf(err) });
      ctx.backends.noteFindings(driver.name, { scanError: messageOf(err) });
    }
  };
  await Promise.all([...drivers.values()].map(scan));

  // At most one operation per volume chain runs at a time (they share the volume's lock), so the
  // order below never settles a snapshot from a scan that an interrupted revert makes stale.
  for (const snapshot of [...ctx.index.allSnapshots()].filter(isTransientSnapshot)) {
    const to = await resolveSnapshot(ctx, snapshot, scans.get(snapshot.backend));
    report.resolved.push({ id: snapshot.id, kind: 'snapshot', from: snapshot.status, to });
  }
  const reverted = new Set<Driver>();
  for (const volume of [...ctx.index.allVolumes()].filter(isTransientVolume)) {
    const driver = drivers.get(volume.backend);
    const found = scans.get(volume.backend);
    const to = driver && found ? await resolveVolume(ctx, volume, driver, found) : await settle(ctx, volume, unreadable(volume));
    if (volume.status === 'reverting' && driver) reverted.add(driver);
    report.resolved.push({ id: volume.id, kind: 'volume', from: volume.status, to });
  }
  // A finished revert changed storage: what is left over is read again.
  for (const driver of reverted) if (scans.has(driver.name)) await scan(driver);

  for (const [name, driver] of drivers) {
    const found = scans.get(name);
    if (!found) continue;
    const failed: Leftover[] = [];
    for (const leftover of found.leftovers) {
      try {
        await ctx.locks.with([leftover.id], () => driver.removeLeftover(leftover));
        report.removed.push({ ...leftover, backend: name });
      } catch (err) {
        failed.push(leftover);
        report.failed.push({ ...leftover, backend: name, error: messageOf(err) });
      }
    }
    report.strays.push(...found.strays.map((s) => ({ ...s, backend: name })));
    ctx.backends.noteFindings(name, { leftovers: failed, strays: found.strays });
  }
  return report;
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
  return record.status;
}

async function resolveVolume(
  ctx: ServiceContext,
  volume: VolumeRecord & { status: TransientVolumeStatus },
  driver: Driver,
  scan: ScanResult,
): Promise<string> {
  const found = scan.volumes.find((v) => v.id === volume.id);
  const settled = ctx.index.connectionsOf(volume.id).length > 0 ? 'in-use' : 'available';
  switch (volume.status) {
    case 'creating':
      // Published means complete, but a file with a smaller size than recorded is not the volume asked for.
      if (found && found.size >= volume.size) return settle(ctx, volume, { status: 'available', location: found.location, error: null });
      return settle(ctx, volume, {
        status: 'error',
        error: interrupted('create', found ? `; storage holds ${found.size} GiB of ${volume.size}` : ''),
      });
    case 'deleting':
      // Drivers' deletes are resumable: a retry of error_deleting finishes the job.
      if (found) return settle(ctx, volume, { status: 'error_deleting', error: interrupted('delete') });
      await ctx.index.deleteVolume(volume);
      return 'deleted';
    case 'extending':
      // The size storage reports is the truth (the record still has the size before the extend).
      if (!found) return settle(ctx, volume, { status: 'error', error: interrupted('extend', '; the volume is not on storage') });
      return settle(ctx, volume, { status: settled, size: Math.max(volume.size, found.size), location: found.location, error: null });
    case 'reverting':
      return finishRevert(ctx, volume, driver, settled);
  }
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
    return settle(ctx, volume, { status: 'error', error: toErrorInfo(error) });
  }
}

async function resolveSnapshot(ctx: ServiceContext, snapshot: SnapshotRecord, scan: ScanResult | undefined): Promise<string> {
  const found = scan?.snapshots.some((s) => s.id === snapshot.id) ?? false;
  // The volume's location follows its chain (NFS's active overlay), which the interrupted operation may have changed.
  const listed = scan?.volumes.find((v) => v.id === snapshot.volumeId);
  const current = ctx.index.getVolume(snapshot.volumeId);
  const volume = listed && current ? { ...current, location: listed.location, updatedAt: now() } : undefined;
  const save = (changes: Partial<SnapshotRecord>) =>
    ctx.index.putSnapshot({ ...snapshot, ...changes, updatedAt: now() }, volume).then(() => changes.status as string);
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
  return 'deleted';
}

/** The report as log lines, one per finding, for the agent's start and `reindex`. */
export function recoveryLines(report: RecoveryReport): string[] {
  return [
    ...report.unscanned.map((u) => `could not scan ${u.backend} to recover it: ${u.error}`),
    ...report.resolved.map((r) => `recovered ${r.kind} ${r.id}: ${r.from} -> ${r.to}`),
    ...report.removed.map((l) => `removed a leftover ${l.kind} of ${l.id} on ${l.backend}: ${l.where}`),
    ...report.failed.map((l) => `could not remove a leftover ${l.kind} of ${l.id} on ${l.backend}: ${l.where}: ${l.error}`),
    ...report.strays.map((s) => `left alone on ${s.backend}, not Kindling's: ${s.where} (${s.reason})`),
  ];
}
