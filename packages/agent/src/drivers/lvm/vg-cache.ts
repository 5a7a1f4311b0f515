import { GIB, noRoomError, roomFor } from '@kindling/protocol';
import type { LvmCommands } from './commands.js';
import { parseRange, type PeRange } from './extents.js';
import { TAG_COW } from './names.js';
import { withVgLock } from './queue.js';
import { parseFullReport, type LvInfo, type Report } from './report.js';

/** cinder's create_thin_pool leaves 5% of the VG's free space for pool metadata and spare. */
export const THIN_POOL_SHARE = 0.95;

export const toGb = (bytes: number): number => Math.round((bytes / GIB) * 100) / 100;

export const lvIsThin = (lv: Pick<LvInfo, 'poolLv' | 'attr'>): boolean => lv.poolLv !== '' || lv.attr.startsWith('V');

/**
 * Extents no new thick LV may take, per VG, module-wide (every backend on the VG in this agent obeys):
 * a thick revert's old COW store, from its merge until the snapshot is re-created on it (revert.ts).
 * Kept on storage as `kindling_cow_` tags on the volume, read back at every refresh.
 */
const reservations = new Map<string, Map<string, PeRange[]>>();

const reservedIn = (vg: string): Map<string, PeRange[]> => {
  let map = reservations.get(vg);
  if (!map) reservations.set(vg, (map = new Map()));
  return map;
};

export interface SpacePolicy {
  reservedPercentage: number;
  maxOverSubscriptionRatio: number;
}

/**
 * The cache's writer: handed only to code running inside the VG's write queue (VgCache.locked), so
 * no report refresh or upkeep can interleave with a change on storage and leave the figures stale.
 */
export interface VgWriter {
  /** Re-reads the whole VG (one `lvm fullreport`). */
  refresh(): Promise<Report>;
  /** Refuses, before any lvcreate/lvextend runs, what the figures say cannot fit. */
  checkSpace(sizeGb: number, thin: boolean): void;
  added(lv: Omit<LvInfo, 'dataPercent' | 'metadataPercent'>): void;
  forgot(lv: string): void;
  resized(lv: string, sizeGb: number): void;
  renamed(from: string, to: string): void;
  /** `lv` holds these extents back from every thick allocation (none: released). */
  reserve(lv: string, ranges: PeRange[]): void;
}

/**
 * One VG's last report, kept current arithmetically after each change so no lvs/vgs runs on the write
 * path. Everyone may read it; only code inside the VG's write queue may change it, through the writer.
 */
export class VgCache {
  private report: Report | null = null;
  private readonly writer: VgWriter;

  constructor(
    private readonly lvm: LvmCommands,
    readonly pool: string,
    private readonly policy: SpacePolicy,
  ) {
    this.writer = {
      refresh: () => this.refresh(),
      checkSpace: (sizeGb, thin) => this.checkSpace(sizeGb, thin),
      added: (lv) => this.added(lv),
      forgot: (lv) => this.forgot(lv),
      resized: (lv, sizeGb) => this.resized(lv, sizeGb),
      renamed: (from, to) => this.renamed(from, to),
      reserve: (lv, ranges) => {
        if (ranges.length > 0) reservedIn(this.vg).set(lv, ranges);
        else reservedIn(this.vg).delete(lv);
      },
    };
  }

  get vg(): string {
    return this.lvm.vg;
  }

  /** Runs `fn` inside this VG's write queue, the only place the cache changes. */
  locked<T>(fn: (cache: VgWriter) => Promise<T>): Promise<T> {
    return withVgLock(this.vg, () => fn(this.writer));
  }

  /** The last report read, or null before the VG was ever seen. */
  get current(): Readonly<Report> | null {
    return this.report;
  }

  lv(name: string): Readonly<LvInfo> | undefined {
    return this.report?.lvs.get(name);
  }

  /** Whether `origin` has a thick (copy-on-write) snapshot, which keeps it from growing while active. */
  hasThickSnapshots(origin: string): boolean {
    for (const lv of this.report?.lvs.values() ?? []) if (lv.origin === origin && !lvIsThin(lv)) return true;
    return false;
  }

  /** Extents held back from thick allocations on this VG. */
  reserved(): PeRange[] {
    return [...reservedIn(this.vg).values()].flat();
  }

  /** The sum of the virtual sizes in the thin pool. */
  thinProvisioned(): number {
    let sum = 0;
    for (const lv of this.report?.lvs.values() ?? []) if (lv.poolLv === this.pool) sum += lv.size;
    return sum;
  }

  /** A size as LVM allocates it: whole extents. */
  private roundToExtent(bytes: number): number {
    const extent = this.report?.vg.extentSize ?? 4 * 1024 * 1024;
    return Math.ceil(bytes / extent) * extent;
  }

  private async refresh(): Promise<Report> {
    const { stdout } = await this.lvm.fullReport();
    this.report = parseFullReport(stdout, this.vg);
    const reserved = reservedIn(this.vg);
    reserved.clear();
    for (const lv of this.report.lvs.values()) {
      const ranges = lv.tags.filter((t) => t.startsWith(TAG_COW)).map((t) => parseRange(t.slice(TAG_COW.length)));
      if (ranges.length > 0) reserved.set(lv.name, ranges);
    }
    return this.report;
  }

  /**
   * Bytes one new volume may take, by the capacity rule (protocol capacity.ts): thick against the
   * VG, thin against the pool (or the pool the first thin volume makes) with its over-subscription.
   */
  roomBytes(thin: boolean): number {
    const report = this.report;
    if (!report) return 0;
    const policy = { thin, maxOverSubscriptionRatio: this.policy.maxOverSubscriptionRatio, reservedPercentage: this.policy.reservedPercentage };
    if (!thin) return roomFor({ ...policy, total: report.vg.size, free: report.vg.free, provisioned: report.vg.size - report.vg.free });
    const pool = report.lvs.get(this.pool);
    const poolSize = pool?.size ?? Math.floor(report.vg.free * THIN_POOL_SHARE);
    const poolFree = pool ? poolSize * (1 - (pool.dataPercent ?? 0) / 100) : poolSize;
    return roomFor({ ...policy, total: poolSize, free: poolFree, provisioned: this.thinProvisioned() });
  }

  /** Refuses what the capacity rule says cannot fit. */
  private checkSpace(sizeGb: number, thin: boolean): void {
    if (!this.report || sizeGb <= 0) return;
    const requested = this.roundToExtent(sizeGb * GIB);
    const room = this.roomBytes(thin);
    if (requested > room) {
      throw noRoomError(`not enough space in ${this.vg}${thin ? `/${this.pool}` : ''} for ${sizeGb} GiB`, requested, room);
    }
  }

  private added(lv: Omit<LvInfo, 'dataPercent' | 'metadataPercent'>): void {
    if (!this.report) return;
    const size = lvIsThin(lv) ? lv.size : this.roundToExtent(lv.size);
    this.report.lvs.set(lv.name, { ...lv, size, dataPercent: null, metadataPercent: null });
    if (!lvIsThin(lv)) this.report.vg.free -= size;
    this.report.vg.lvCount += 1;
  }

  private forgot(lv: string): void {
    const known = this.report?.lvs.get(lv);
    if (!this.report || !known) return;
    this.report.lvs.delete(lv);
    if (!lvIsThin(known)) this.report.vg.free += known.size;
    this.report.vg.lvCount -= 1;
  }

  private resized(lv: string, sizeGb: number): void {
    const known = this.report?.lvs.get(lv);
    if (!this.report || !known) return;
    const thin = lvIsThin(known);
    const size = thin ? sizeGb * GIB : this.roundToExtent(sizeGb * GIB);
    if (!thin) this.report.vg.free -= size - known.size;
    known.size = size;
  }

  private renamed(from: string, to: string): void {
    const known = this.report?.lvs.get(from);
    if (!this.report || !known) return;
    this.report.lvs.delete(from);
    this.report.lvs.set(to, { ...known, name: to });
  }
}
