import type { Location } from '@kindling/protocol';
import type { VolumeRef } from '../driver.js';
import type { Clearer } from './clear.js';
import { cloneSnapshotLv, cloneSnapshotTags, partialLv, volumeLv, volumeTags } from './names.js';
import type { LvSteps } from './steps.js';
import type { VgWriter } from './vg-cache.js';

/**
 * New volumes filled from another LV: thin ones as thin snapshots, thick ones by a flushed `dd` under
 * their partial name. `volume-<id>` only ever names a complete copy (recovery.md).
 */
export class Copier {
  constructor(
    private readonly steps: LvSteps,
    private readonly clearer: Clearer,
  ) {}

  /**
   * A thin volume as a thin snapshot of `source` (cinder's thin path), grown to the volume's size and
   * activated for good. One lvcreate is complete as made; with a grow it is built under its partial
   * name and renamed last, so `volume-<id>` never names a copy of the wrong size.
   */
  thin(volume: VolumeRef, source: string, sourceGb: number): Promise<Location> {
    const { steps } = this;
    const lv = volumeLv(volume.id);
    const build = volume.size > sourceGb ? partialLv(volume.id) : lv;
    return steps.cache.locked(async (w) => {
      let made = false;
      try {
        await steps.snapshotLocked(w, build, source, volumeTags(volume.id), true, sourceGb);
        made = true;
        if (volume.size > sourceGb) await steps.extendLocked(w, build, volume.size, true);
        await steps.activateLocked(build, true);
        if (build !== lv) await steps.renameLocked(w, build, lv);
        return steps.location(lv, true);
      } catch (err) {
        if (made) await steps.removeLocked(w, build).catch((e: unknown) => this.clearer.failed(build, e));
        throw err;
      }
    });
  }

  /** A thick clone copies from a short-lived snapshot, so the source may stay in use (cinder's way). */
  async thickClone(volume: VolumeRef, source: VolumeRef, thin: boolean): Promise<Location> {
    const src = volumeLv(source.id);
    const temp = cloneSnapshotLv(volume.id);
    try {
      return await this.into(volume, temp, source.size, thin, async (w) => {
        await this.steps.snapshotLocked(w, temp, src, cloneSnapshotTags(volume.id), false, source.size);
        await this.steps.activateLocked(temp, false);
      });
    } finally {
      // Its copy-on-write store holds the source's old blocks: zeroed as a snapshot delete would.
      await this.clearer.cleanUp(temp);
    }
  }

  /**
   * A new volume filled with `dd` from `from` under its partial name: `prepare` makes `from` ready
   * inside the queue, the copy runs outside it (a long dd does not hold up the VG's other writes) and
   * is flushed, and the rename to `volume-<id>` is the last step.
   */
  into(volume: VolumeRef, from: string, sizeGb: number, thin: boolean, prepare: (w: VgWriter) => Promise<void>): Promise<Location> {
    return this.build(volume, thin, prepare, () => this.steps.lvm.copy(from, partialLv(volume.id), sizeGb, thin).then(() => undefined));
  }

  /**
   * A new volume under its partial name, made and activated inside the queue after `prepare`, filled
   * outside it by `fill` (given the partial LV's device; it flushes what it wrote), renamed to
   * `volume-<id>` last. A failure takes the partial LV away (zeroed first when thick).
   */
  async build(volume: VolumeRef, thin: boolean, prepare: (w: VgWriter) => Promise<void>, fill: (device: string) => Promise<void>): Promise<Location> {
    const { steps } = this;
    const part = partialLv(volume.id);
    const lv = volumeLv(volume.id);
    let made = false;
    try {
      const device = await steps.cache.locked(async (w) => {
        await prepare(w);
        await steps.createLocked(w, part, volume.id, volume.size, thin);
        made = true;
        return steps.activateLocked(part, false);
      });
      await fill(device);
      await steps.cache.locked((w) => steps.renameLocked(w, part, lv));
      return steps.location(lv, thin);
    } catch (err) {
      // A half-copy holds the source's data: zeroed (when thick) before its extents are freed.
      if (made) await this.clearer.cleanUp(part);
      throw err;
    }
  }
}
