import { messageOf, type SnapshotRecord, type VolumeRecord } from '@kindling/protocol';
import type { Leftover, ScanResult, Stray } from '../drivers/driver.js';
import type { ChangeMark } from '../index/changes.js';
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

/**
 * Where the index stood before a read of storage, to compare it with: the change log's mark. A record
 * no change touched since (changes.ts) is as it was then, so no copy of the backend's records is held.
 */
export interface Held {
  backend: string;
  mark: ChangeMark;
}

export function heldBefore(ctx: ServiceContext, backend: string): Held {
  return { backend, mark: ctx.index.changes.mark() };
}

/**
 * The one comparison of storage with the index, fed a scan's pages as they come: only the ids found
 * are kept between pages. Operations may run while storage is read: only records untouched from before
 * the scan to after it count, either way, and only what the index lacks both before and after the scan.
 */
export class Comparison {
  private readonly onStorage = new Set<string>();
  private readonly missingFromIndex: IndexMismatch['missingFromIndex'] = [];

  constructor(
    private readonly ctx: ServiceContext,
    private readonly held: Held,
  ) {}

  private untouched(id: string): boolean {
    return !this.ctx.index.changes.changedAfter(id, this.held.mark);
  }

  /** One page of the scan. What the index lacks is looked for now: the mark, not the time, decides. */
  add(page: ScanResult): void {
    const { index } = this.ctx;
    for (const found of page.volumes) {
      this.onStorage.add(found.id);
      if (!index.has('volume', found.id) && this.untouched(found.id)) this.missingFromIndex.push({ kind: 'volume', id: found.id });
    }
    for (const found of page.snapshots) {
      this.onStorage.add(found.id);
      if (!index.has('snapshot', found.id) && this.untouched(found.id)) this.missingFromIndex.push({ kind: 'snapshot', id: found.id });
    }
  }

  /** After the last page: what the index holds settled and storage lacks, beside what the index lacks. */
  result(): IndexMismatch {
    const { index } = this.ctx;
    const out: IndexMismatch = { missingFromIndex: this.missingFromIndex, missingFromStorage: [] };
    // Ids only: just the records missing from storage are read, for their status.
    for (const id of index.idsOf('volume', this.held.backend)) {
      const v = !this.onStorage.has(id) && this.untouched(id) ? index.getVolume(id) : undefined;
      if (v && volumePhase(v.status) === 'settled') out.missingFromStorage.push({ kind: 'volume', id, status: v.status });
    }
    for (const id of index.idsOf('snapshot', this.held.backend)) {
      const s = !this.onStorage.has(id) && this.untouched(id) ? index.getSnapshot(id) : undefined;
      if (s && snapshotPhase(s.status) === 'settled') out.missingFromStorage.push({ kind: 'snapshot', id, status: s.status });
    }
    return out;
  }
}

/** The comparison of a whole scan with the index. */
export function compareWithIndex(ctx: ServiceContext, held: Held, scan: ScanResult): IndexMismatch {
  const comparison = new Comparison(ctx, held);
  comparison.add(scan);
  return comparison.result();
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
