import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import type { Leftover, Stray } from '../drivers/driver.js';
import type { ServiceContext } from './context.js';
import { now } from './lifecycle.js';
import { snapshotPhase, volumePhase } from './status.js';

export interface ReconcileReport {
  backend: string;
  /** On storage, not in the index (added to the index when rebuilding). */
  missingFromIndex: { kind: 'volume' | 'snapshot'; id: string }[];
  /** In the index, not on storage (reported only: a human decides). */
  missingFromStorage: { kind: 'volume' | 'snapshot'; id: string; status: string }[];
  /** Kindling's temporary artifacts the scan saw: of running operations, or of ones recovery could not clean. */
  leftovers: Leftover[];
  /** What storage holds that is not provably Kindling's: reported, never removed. */
  strays: Stray[];
  error?: string;
}

/**
 * Compares each started backend's storage (LV tags, NFS files and .info records) with the index. With
 * `rebuild`, what storage holds and the index lacks is added; nothing is ever deleted, on either side.
 */
export async function reconcile(ctx: ServiceContext, rebuild: boolean): Promise<ReconcileReport[]> {
  const reports: ReconcileReport[] = [];
  for (const driver of ctx.backends.drivers()) {
    const report: ReconcileReport = { backend: driver.name, missingFromIndex: [], missingFromStorage: [], leftovers: [], strays: [] };
    reports.push(report);
    // Operations may run while storage is read: only records untouched from before the scan to after it
    // count, either way (every write replaces the index's record object, so untouched is identity).
    const volumesBefore = new Map(ctx.index.volumesOfBackend(driver.name).map((v) => [v.id, v]));
    const snapshotsBefore = new Map([...ctx.index.allSnapshots()].filter((s) => s.backend === driver.name).map((s) => [s.id, s]));
    let scan;
    try {
      scan = await driver.scan();
    } catch (err) {
      report.error = err instanceof Error ? err.message : String(err);
      ctx.backends.noteFindings(driver.name, { scanError: report.error });
      continue;
    }
    report.leftovers = scan.leftovers;
    report.strays = scan.strays;
    ctx.backends.noteFindings(driver.name, { strays: scan.strays });
    const onStorage = new Set([...scan.volumes.map((v) => v.id), ...scan.snapshots.map((s) => s.id)]);
    for (const [id, v] of volumesBefore) {
      if (!onStorage.has(id) && volumePhase(v.status) === 'settled' && ctx.index.getVolume(id) === v) {
        report.missingFromStorage.push({ kind: 'volume', id, status: v.status });
      }
    }
    for (const [id, s] of snapshotsBefore) {
      if (!onStorage.has(id) && snapshotPhase(s.status) === 'settled' && ctx.index.getSnapshot(id) === s) {
        report.missingFromStorage.push({ kind: 'snapshot', id, status: s.status });
      }
    }
    const at = now();
    // Storage holding what the index lacks both before and after the scan (not a delete that ran meanwhile).
    for (const found of scan.volumes) {
      if (volumesBefore.has(found.id) || ctx.index.getVolume(found.id)) continue;
      report.missingFromIndex.push({ kind: 'volume', id: found.id });
      if (!rebuild) continue;
      const record: VolumeRecord = {
        id: found.id,
        backend: driver.name,
        name: null,
        description: null,
        size: found.size,
        status: 'available',
        metadata: {},
        createdAt: at,
        updatedAt: at,
        sourceVolId: null,
        snapshotId: null,
        location: found.location,
        error: null,
      };
      await ctx.index.putVolume(record);
    }
    for (const found of scan.snapshots) {
      if (snapshotsBefore.has(found.id) || ctx.index.getSnapshot(found.id)) continue;
      report.missingFromIndex.push({ kind: 'snapshot', id: found.id });
      const volume = ctx.index.getVolume(found.volumeId);
      if (!rebuild || !volume) continue;
      const record: SnapshotRecord = {
        id: found.id,
        backend: driver.name,
        volumeId: found.volumeId,
        name: null,
        description: null,
        volumeSize: volume.size,
        status: 'available',
        createdAt: at,
        updatedAt: at,
        location: found.location,
        error: null,
      };
      await ctx.index.putSnapshot(record);
    }
  }
  return reports;
}
