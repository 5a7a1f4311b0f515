import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import type { ServiceContext } from './context.js';
import { now } from './lifecycle.js';

/** Statuses that claim the resource is on storage (error ones may never have reached it). */
const SETTLED = new Set(['available', 'in-use']);

export interface ReconcileReport {
  backend: string;
  /** On storage, not in the index (added to the index when rebuilding). */
  missingFromIndex: { kind: 'volume' | 'snapshot'; id: string }[];
  /** In the index, not on storage (reported only: a human decides). */
  missingFromStorage: { kind: 'volume' | 'snapshot'; id: string; status: string }[];
  error?: string;
}

/**
 * Compares each started backend's storage (LV tags, NFS files and .info records) with the index. With
 * `rebuild`, what storage holds and the index lacks is added; nothing is ever deleted, on either side.
 */
export async function reconcile(ctx: ServiceContext, rebuild: boolean): Promise<ReconcileReport[]> {
  const reports: ReconcileReport[] = [];
  for (const driver of ctx.backends.drivers()) {
    const report: ReconcileReport = { backend: driver.name, missingFromIndex: [], missingFromStorage: [] };
    reports.push(report);
    // Operations may run while storage is read: records changed since, or mid-operation, are not drift.
    const scanStarted = now();
    let scan;
    try {
      scan = await driver.scan();
    } catch (err) {
      report.error = err instanceof Error ? err.message : String(err);
      continue;
    }
    const onStorage = new Set([...scan.volumes.map((v) => v.id), ...scan.snapshots.map((s) => s.id)]);
    const settledAndMissing = (r: { backend: string; id: string; status: string; updatedAt: string }) =>
      r.backend === driver.name && !onStorage.has(r.id) && SETTLED.has(r.status) && r.updatedAt < scanStarted;
    for (const v of ctx.index.allVolumes()) {
      if (settledAndMissing(v)) report.missingFromStorage.push({ kind: 'volume', id: v.id, status: v.status });
    }
    for (const s of ctx.index.allSnapshots()) {
      if (settledAndMissing(s)) report.missingFromStorage.push({ kind: 'snapshot', id: s.id, status: s.status });
    }
    const at = now();
    for (const found of scan.volumes) {
      if (ctx.index.getVolume(found.id)) continue;
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
      if (ctx.index.getSnapshot(found.id)) continue;
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
