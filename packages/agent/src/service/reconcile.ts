import { messageOf, type SnapshotRecord, type VolumeRecord } from '@kindling/protocol';
import type { Leftover, ScanResult, Stray } from '../drivers/driver.js';
import type { ServiceContext } from './context.js';
import { now } from './lifecycle.js';
import { snapshotPhase, volumePhase } from './status.js';

/** Where storage and the index disagree, as one read of storage found. */
export interface IndexMismatch {
  /** On storage, not in the index (added to the index when rebuilding). */
  missingFromIndex: { kind: 'volume' | 'snapshot'; id: string }[];
  /** In the index, not on storage (reported only: a human decides). */
  missingFromStorage: { kind: 'volume' | 'snapshot'; id: string; status: string }[];
}

export interface ReconcileReport extends IndexMismatch {
  backend: string;
  /** Kindling's temporary artifacts the scan saw: of running operations, or of ones recovery could not clean. */
  leftovers: Leftover[];
  /** What storage holds that is not provably Kindling's: reported, never removed. */
  strays: Stray[];
  error?: string;
}

/** A backend's records as they were before a read of storage, to compare it with: id to version (IndexStore.versionOf). */
export interface Held {
  volumes: Map<string, string>;
  snapshots: Map<string, string>;
}

export function heldBefore(ctx: ServiceContext, backend: string): Held {
  return { volumes: ctx.index.versionsOf('volume', backend), snapshots: ctx.index.versionsOf('snapshot', backend) };
}

/**
 * The one comparison of storage with the index. Operations may run while storage is read: only records
 * untouched from before the scan to after it count, either way (the same version before and after), and
 * only what the index lacks both before and after the scan.
 */
export function compareWithIndex(ctx: ServiceContext, held: Held, scan: ScanResult): IndexMismatch {
  const out: IndexMismatch = { missingFromIndex: [], missingFromStorage: [] };
  const onStorage = new Set([...scan.volumes.map((v) => v.id), ...scan.snapshots.map((s) => s.id)]);
  for (const [id, version] of held.volumes) {
    const v = !onStorage.has(id) && ctx.index.versionOf('volume', id) === version ? ctx.index.getVolume(id) : undefined;
    if (v && volumePhase(v.status) === 'settled') out.missingFromStorage.push({ kind: 'volume', id, status: v.status });
  }
  for (const [id, version] of held.snapshots) {
    const s = !onStorage.has(id) && ctx.index.versionOf('snapshot', id) === version ? ctx.index.getSnapshot(id) : undefined;
    if (s && snapshotPhase(s.status) === 'settled') out.missingFromStorage.push({ kind: 'snapshot', id, status: s.status });
  }
  for (const found of scan.volumes) {
    if (!held.volumes.has(found.id) && !ctx.index.getVolume(found.id)) out.missingFromIndex.push({ kind: 'volume', id: found.id });
  }
  for (const found of scan.snapshots) {
    if (!held.snapshots.has(found.id) && !ctx.index.getSnapshot(found.id)) out.missingFromIndex.push({ kind: 'snapshot', id: found.id });
  }
  return out;
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
    const held = heldBefore(ctx, driver.name);
    let scan;
    try {
      scan = await driver.scan();
    } catch (err) {
      report.error = messageOf(err);
      ctx.backends.noteFindings(driver.name, { scanError: report.error });
      continue;
    }
    report.leftovers = scan.leftovers;
    report.strays = scan.strays;
    ctx.backends.noteFindings(driver.name, { strays: scan.strays });
    Object.assign(report, compareWithIndex(ctx, held, scan));
    if (!rebuild) continue;
    const at = now();
    // Storage holding what the index lacks both before and after the scan (not a delete that ran meanwhile).
    const lacking = new Set(report.missingFromIndex.map((m) => m.id));
    for (const found of scan.volumes) {
      if (!lacking.has(found.id)) continue;
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
      const volume = ctx.index.getVolume(found.volumeId);
      if (!lacking.has(found.id) || !volume) continue;
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
