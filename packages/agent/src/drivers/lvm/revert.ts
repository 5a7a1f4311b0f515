import { BackendError, GIB, messageOf, type Location } from '@kindling/protocol';
import type { SnapshotRef, VolumeRef } from '../driver.js';
import type { Clearer } from './clear.js';
import { slowestMs } from './commands.js';
import { parseRange, rangeArg, type PeRange } from './extents.js';
import { TAG_COW, revertLv, snapshotLv, snapshotTags, volumeLv, volumeTags } from './names.js';
import type { LvInfo, Report } from './report.js';
import { withDetails, type LvSteps } from './steps.js';
import type { VgWriter } from './vg-cache.js';

/** lv_attr `O`: an origin whose snapshot is merging into it (the snapshot is hidden meanwhile). */
const isMergingOrigin = (lv: Pick<LvInfo, 'attr'> | null | undefined): boolean => lv?.attr.startsWith('O') ?? false;

const cowRanges = (lv: Pick<LvInfo, 'tags'> | null | undefined): PeRange[] =>
  (lv?.tags ?? []).filter((t) => t.startsWith(TAG_COW)).map((t) => parseRange(t.slice(TAG_COW.length)));

export interface RevertDeps {
  steps: LvSteps;
  clearer: Clearer;
  /** Waits between polls of a background merge (tests make it instant). */
  sleep: (ms: number) => Promise<void>;
  /** Slowest merge (MiB/s) before the wait gives up: the zeroing floor, as a merge is a copy of that size. */
  minMiBps: number;
}

/** Reverts to a snapshot, thin or thick: resumable from any step (recovery.md). */
export class Reverter {
  constructor(private readonly d: RevertDeps) {}

  async revert(volume: VolumeRef, snapshot: SnapshotRef, thin: boolean): Promise<Location> {
    const { steps } = this.d;
    const lv = volumeLv(volume.id);
    if (thin) {
      // What an interrupted earlier attempt left decides where this one resumes: read it, not the cache.
      await steps.cache.locked(async (w) => this.revertThinLocked(w, await w.refresh(), volume, snapshot));
      return steps.location(lv, true);
    }
    await this.revertThick(volume, snapshot);
    return steps.location(lv, false);
  }

  /** A leftover `revert-<id>`: removed when the old volume is still there, else renamed into place. */
  settleLeftover(volumeId: string): Promise<void> {
    const { steps } = this.d;
    const lv = volumeLv(volumeId);
    const next = revertLv(volumeId);
    return steps.cache.locked(async (w) => {
      if (!(await steps.lookup(next))) return;
      if (await steps.lookup(lv)) await steps.removeLocked(w, next);
      else await steps.renameLocked(w, next, lv);
    });
  }

  /**
   * Thin revert: the snapshot's data is built beside the volume as `revert-<id>`, the old volume is
   * removed, and the new one renamed into place. A second call finishes from any step.
   */
  private async revertThinLocked(w: VgWriter, report: Report, volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    const { steps } = this.d;
    const lv = volumeLv(volume.id);
    const next = revertLv(volume.id);
    if (report.lvs.has(next)) {
      // The old volume is removed only once the new one is complete: then only the rename is left.
      if (!report.lvs.has(lv)) return steps.renameLocked(w, next, lv);
      // Both there: the new one may be partial. Start again.
      await steps.removeLocked(w, next);
    }
    try {
      await steps.snapshotLocked(w, next, snapshotLv(snapshot.id), volumeTags(volume.id), true, snapshot.volumeSize);
      if (volume.size > snapshot.volumeSize) await steps.extendLocked(w, next, volume.size, true);
      await steps.activateLocked(next, true);
    } catch (err) {
      // A half-made copy left behind would make every later revert start by removing it anyway.
      await steps.removeLocked(w, next).catch((e: unknown) => this.d.clearer.failed(next, e));
      throw withDetails(err, { storageChanged: false, snapshotPresent: true });
    }
    try {
      await steps.removeLocked(w, lv);
      await steps.renameLocked(w, next, lv);
    } catch (err) {
      throw withDetails(err, { storageChanged: true, snapshotPresent: true });
    }
  }

  /**
   * Thick revert, cinder's merge, with the VG queue held only for lvm2's steps:
   * 1 (queue) record on the volume where the snapshot's COW store lies (tags), start the merge;
   * 2 (outside) wait for lvm2 to finish it and drop the snapshot, which frees that store unzeroed;
   * 3 (queue) re-create the snapshot on exactly those extents, so the old blocks stay inside this
   *   volume's own snapshot (zeroed by its delete), then drop the tags.
   * A second call after a crash: a snapshot still there is merged; a merge under way is waited for;
   * a snapshot gone was merged; then the rest runs again.
   */
  private async revertThick(volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    const { steps } = this.d;
    const lv = volumeLv(volume.id);
    const snap = snapshotLv(snapshot.id);
    let started = false;
    try {
      await steps.cache.locked(async (w) => {
        const report = await w.refresh();
        const origin = report.lvs.get(lv);
        let cycle = isMergingOrigin(origin);
        if (report.lvs.has(snap) && !cycle) {
          const recorded = new Set(origin?.tags ?? []);
          const store = await steps.lvm.peRanges(snap);
          const tags = store.map((r) => `${TAG_COW}${rangeArg(r)}`).filter((t) => !recorded.has(t));
          if (tags.length > 0) await steps.lvm.addTags(lv, tags);
          // From here no thick allocation of this agent may take them (vg-cache.ts), until step 3 re-pins them.
          w.reserve(lv, [...cowRanges(origin), ...store]);
          started = true;
          // Deferred when the volume is inactive or open: it starts on the next activation.
          const { stdout, stderr } = await steps.lvm.merge(snap);
          cycle = /Delaying merge|next activation/i.test(stdout + stderr);
        }
        started = true;
        if (cycle) {
          // Also restarts lvm2's poller for a merge an earlier (killed) attempt left behind.
          await steps.lvm.deactivate(lv);
          await steps.activateLocked(lv, false);
        }
        w.forgot(snap);
      });
      await this.waitMerged(lv, volume.size * GIB);
      await steps.cache.locked(async (w) => {
        const info = await steps.lookup(lv);
        if (await steps.lookup(snap)) return;
        await this.recreateLocked(w, snap, lv, cowRanges(info), volume, snapshot);
      });
      const info = await steps.lookup(lv);
      const tags = (info?.tags ?? []).filter((t) => t.startsWith(TAG_COW));
      if (tags.length > 0) {
        await steps.cache.locked(async (w) => {
          await steps.lvm.delTags(lv, tags);
          w.reserve(lv, []);
        });
      }
    } catch (err) {
      const present = await steps.lookup(snap).then(
        (s) => s !== null,
        () => true,
      );
      throw withDetails(err, { storageChanged: started, snapshotPresent: present });
    }
  }

  /**
   * The snapshot again, on the old COW store's extents when they were recorded. Should something
   * have taken some of them meanwhile (a command from outside this agent), the snapshot goes
   * anywhere and the extents are reported: they may hold the volume's old blocks.
   */
  private async recreateLocked(w: VgWriter, snap: string, lv: string, pin: PeRange[], volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    const { steps } = this.d;
    const tags = snapshotTags(snapshot.id, volume.id);
    if (pin.length > 0) {
      try {
        return await steps.snapshotLocked(w, snap, lv, tags, false, volume.size, pin);
      } catch (err) {
        const where = `${steps.vg}/${lv}`;
        this.d.clearer.note(where, `${where} was reverted, but its snapshot's old COW extents ${pin.map(rangeArg).join(' ')} could not all be re-pinned (they may hold its old blocks): ${messageOf(err)}`);
      }
    }
    await steps.snapshotLocked(w, snap, lv, tags, false, volume.size);
  }

  /** lvm2 finishes a merge in the background, then drops the snapshot LV: polled outside the queue. */
  private async waitMerged(lv: string, bytes: number): Promise<void> {
    const { steps } = this.d;
    const limit = slowestMs(Math.ceil(bytes / (1024 * 1024)), this.d.minMiBps);
    for (let waited = 0; limit === 0 || waited <= limit; waited += 1000) {
      if (!isMergingOrigin(await steps.lookup(lv))) return;
      await this.d.sleep(1000);
    }
    throw new BackendError(`the merge into ${steps.vg}/${lv} did not finish in ${limit} ms`);
  }
}
