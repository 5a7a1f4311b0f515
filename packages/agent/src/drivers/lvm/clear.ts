import { messageOf } from '@kindling/protocol';
import { devicePath, mapperPath } from './commands.js';
import { clearLv } from './names.js';
import type { LvInfo } from './report.js';
import type { LvSteps } from './steps.js';
import { lvIsThin } from './vg-cache.js';

export interface ClearPolicy {
  /** cinder's volume_clear: `zero` overwrites a thick LV's blocks before its extents are freed. */
  volumeClear: 'zero' | 'none';
  /** Slowest zeroing (MiB/s) before its dd is killed; 0: never killed. */
  volumeClearMinMiBps: number;
}

/** What to overwrite before an LV's extents go: a device and how many bytes of it. */
export interface ZeroPlan {
  device: string;
  bytes: number;
}

/**
 * THE rule for zeroing, read from one source: the LV as lvm2 reports it now (never the record or the
 * cache: a stale answer would free a tenant's data unzeroed). Thin LVs never: the pool hands out
 * zeroed blocks. A thick snapshot: its `-cow` store, which holds the origin's old blocks. The size is
 * the LV's real size (for a snapshot, its COW store's). `forced` zeroes whatever `volumeClear` says
 * (an LV renamed aside exists only because zeroing was due).
 */
export function zeroPlan(vg: string, lv: Pick<LvInfo, 'name' | 'size' | 'attr' | 'poolLv'>, policy: ClearPolicy, forced = false): ZeroPlan | null {
  if (lvIsThin(lv) || (!forced && policy.volumeClear !== 'zero')) return null;
  const cow = lv.attr.startsWith('s');
  return { device: cow ? `${mapperPath(vg, lv.name)}-cow` : devicePath(vg, lv.name), bytes: lv.size };
}

/**
 * Takes LVs away the way `volumeClear` asks: zeroing outside the VG queue, lvm2 commands inside it.
 * A cleanup that fails is remembered and reported (readiness warnings) until it is done; the LV keeps
 * its temporary name on storage, so the next start's scan finds it and recovery retries it.
 */
export class Clearer {
  private readonly unfinished = new Map<string, string>();

  constructor(
    private readonly steps: LvSteps,
    private readonly policy: ClearPolicy,
  ) {}

  /** Cleanups that failed since start (and other findings on storage), for readiness. */
  warnings(): string[] {
    return [...this.unfinished.values()];
  }

  /** A finding about `where` (`vg/lv`) an operator must hear of, until that LV is settled. */
  note(where: string, message: string): void {
    this.unfinished.set(where, message);
  }

  /** A leftover taken away by recovery is no longer unfinished. */
  settled(where: string): void {
    this.unfinished.delete(where);
  }

  /** A cleanup of `lv` that failed: reported until done. */
  failed(lv: string, err: unknown): void {
    const where = `${this.steps.vg}/${lv}`;
    this.note(where, `cleanup of ${where} failed (retried at the next start): ${messageOf(err)}`);
  }

  /**
   * Deletes a volume or snapshot LV (cinder's volume_clear without holding the VG): renamed aside
   * inside the queue (activated first, so a failure there changes nothing), zeroed outside, removed
   * inside. A crash while zeroing leaves `clear-<lv>`: a `pending-clear` leftover, or found here
   * again by a retried delete.
   */
  async remove(lv: string): Promise<void> {
    const { steps } = this;
    if (this.policy.volumeClear === 'none') return steps.cache.locked((w) => steps.removeLocked(w, lv));
    const aside = clearLv(lv);
    const plan = await steps.cache.locked(async (w) => {
      const info = await steps.lookup(lv);
      if (!info) {
        const found = await steps.lookup(aside);
        if (!found || !(await steps.activateIfPresent(aside))) return null;
        return zeroPlan(steps.vg, found, this.policy, true);
      }
      if (!zeroPlan(steps.vg, info, this.policy)) {
        await steps.removeLocked(w, lv);
        return null;
      }
      await steps.activateLocked(lv, false);
      // A volume made before owner tags: its aside name must say whose it is (recovery.md).
      if (!info.tags.includes(steps.owner)) await steps.lvm.addTags(lv, [steps.owner]);
      await steps.renameLocked(w, lv, aside);
      return zeroPlan(steps.vg, { ...info, name: aside }, this.policy, true);
    });
    if (plan) await this.zeroAndRemove(aside, plan);
  }

  /** Removes a temporary LV, zeroed first when the rule says so (always when `forced`); one already gone is done. */
  async discard(lv: string, forced = false): Promise<void> {
    const { steps } = this;
    if (this.policy.volumeClear === 'none' && !forced) return steps.cache.locked((w) => steps.removeLocked(w, lv));
    const plan = await steps.cache.locked(async (w) => {
      const info = await steps.lookup(lv);
      if (!info) return null;
      const zero = zeroPlan(steps.vg, info, this.policy, forced);
      if (zero) await steps.activateLocked(lv, false);
      else await steps.removeLocked(w, lv);
      return zero;
    });
    if (plan) await this.zeroAndRemove(lv, plan);
  }

  /** discard() after a failed operation: its own failure must not hide the operation's, so it is reported instead. */
  async cleanUp(lv: string): Promise<void> {
    try {
      await this.discard(lv);
      this.settled(`${this.steps.vg}/${lv}`);
    } catch (err) {
      this.failed(lv, err);
    }
  }

  /** Zeroes an active LV outside the queue, then removes it inside. */
  private async zeroAndRemove(lv: string, plan: ZeroPlan): Promise<void> {
    await this.steps.lvm.zero(plan.device, plan.bytes, this.policy.volumeClearMinMiBps);
    await this.steps.cache.locked((w) => this.steps.removeLocked(w, lv));
  }
}
