import { BackendError, ConflictError, GIB, KindlingError, messageOf, type Location } from '@kindling/protocol';
import { LvmCommands, devicePath, isLvNotFound, isSameSize } from './commands.js';
import { without, type PeRange } from './extents.js';
import { parseLvs, type LvInfo } from './report.js';
import { volumeTags } from './names.js';
import { THIN_POOL_SHARE, type VgCache, type VgWriter } from './vg-cache.js';

export const stderrOf = (err: unknown): string =>
  err instanceof KindlingError && typeof err.details.stderrTail === 'string' ? err.details.stderrTail : '';

/** lvm2's first line that is not a warning says what is wrong ('Volume group "x" not found'). */
export const lvmReason = (err: unknown): string =>
  stderrOf(err)
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('WARNING')) ?? messageOf(err);

/** Tells the service what a failure left on storage (`storageChanged: false`: the record stays as it was). */
export function withDetails(err: unknown, details: Record<string, boolean>): KindlingError {
  const error = err instanceof KindlingError ? err : new BackendError(messageOf(err), {}, { cause: err });
  Object.assign(error.details, details);
  return error;
}

/**
 * The single lvm2 steps every operation is made of, shared by the driver, its copies, zeroing and
 * reverts. The *Locked ones run inside the VG's write queue and keep its cache current.
 */
export class LvSteps {
  constructor(
    readonly lvm: LvmCommands,
    readonly cache: VgCache,
    /** This backend's owner tag: every LV it makes carries it (recovery takes away only its own). */
    readonly owner: string,
    private readonly deviceExists: (path: string) => Promise<boolean>,
  ) {}

  get vg(): string {
    return this.lvm.vg;
  }

  location(lv: string, thin: boolean): Location {
    return { vg: this.vg, lv, thin };
  }

  /** One LV as lvm2 reports it now, or null when it is not there. */
  async lookup(lv: string): Promise<LvInfo | null> {
    try {
      return parseLvs((await this.lvm.lvs(lv)).stdout)[0] ?? null;
    } catch (err) {
      if (isLvNotFound(stderrOf(err))) return null;
      throw err;
    }
  }

  /** A new volume LV (`lv` may be a temporary name); thin ones in the pool, made on first use. */
  async createLocked(w: VgWriter, lv: string, volumeId: string, sizeGb: number, thin: boolean): Promise<void> {
    const tags = [...volumeTags(volumeId), this.owner];
    if (thin) {
      await this.ensurePoolLocked(w);
      w.checkSpace(sizeGb, true);
      await this.lvm.createThin(lv, sizeGb, this.cache.pool, tags);
      w.added({ name: lv, size: sizeGb * GIB, tags, attr: 'Vwi-a-tz--', origin: '', poolLv: this.cache.pool });
    } else {
      w.checkSpace(sizeGb, false);
      await this.lvm.createLinear(lv, sizeGb, tags, await this.allocatable());
      w.added({ name: lv, size: sizeGb * GIB, tags, attr: '-wi-a-----', origin: '', poolLv: '' });
    }
  }

  /** cinder's create_thin_pool on first use: 95% of the VG's free space. */
  private async ensurePoolLocked(w: VgWriter): Promise<void> {
    const report = this.cache.current ?? (await w.refresh());
    if (report.lvs.has(this.cache.pool)) return;
    const extent = report.vg.extentSize;
    const size = Math.floor((report.vg.free * THIN_POOL_SHARE) / extent) * extent;
    await this.lvm.createThinPool(this.cache.pool, size);
    // Once per backend: the pool's metadata and spare LVs take space only a fresh report shows.
    await w.refresh();
  }

  async snapshotLocked(w: VgWriter, lv: string, origin: string, tags: string[], thin: boolean, sizeGb: number, pin: PeRange[] = []): Promise<void> {
    if (!thin && pin.length === 0) w.checkSpace(sizeGb, false);
    const owned = [...tags, this.owner];
    if (pin.length > 0) await this.lvm.createSnapshot(lv, origin, owned, sizeGb, pin, true);
    else await this.lvm.createSnapshot(lv, origin, owned, thin ? null : sizeGb, thin ? [] : await this.allocatable());
    const poolLv = thin ? this.cache.pool : '';
    w.added({ name: lv, size: sizeGb * GIB, tags: owned, attr: thin ? 'Vwi---tz-k' : 'swi-a-s---', origin, poolLv });
  }

  async extendLocked(w: VgWriter, lv: string, sizeGb: number, thin: boolean): Promise<void> {
    await this.lvm.extend(lv, sizeGb, thin ? [] : await this.allocatable()).catch((err: unknown) => {
      if (!isSameSize(stderrOf(err))) throw err;
    });
    w.resized(lv, sizeGb);
  }

  /**
   * Where a new thick LV's extents may come from: anywhere (no PV list) unless some are reserved (a
   * thick revert's old COW store, recovery.md), then every free extent but those.
   */
  private async allocatable(): Promise<PeRange[]> {
    const reserved = this.cache.reserved();
    if (reserved.length === 0) return [];
    const allowed = without(await this.lvm.freeRanges(), reserved);
    if (allowed.length === 0) throw new ConflictError(`no free extents in ${this.vg} outside those a revert holds back`);
    return allowed;
  }

  async renameLocked(w: VgWriter, from: string, to: string): Promise<void> {
    await this.lvm.rename(from, to);
    w.renamed(from, to);
  }

  /** `lvremove -f`, retried once with cinder's settings; an LV already gone counts as removed. */
  async removeLocked(w: VgWriter, lv: string): Promise<void> {
    try {
      await this.lvm.remove(lv);
    } catch (err) {
      if (!isLvNotFound(stderrOf(err))) {
        await this.lvm.remove(lv, true).catch((retryErr: unknown) => {
          if (!isLvNotFound(stderrOf(retryErr))) throw retryErr;
        });
      }
    }
    w.forgot(lv);
  }

  /**
   * Activates and returns the device path. Without device-mapper, lvm2 with activation disabled
   * "succeeds" but makes no device node: that is a failure, reported like any failed command.
   */
  async activateLocked(lv: string, permanent: boolean): Promise<string> {
    const { stderr, command } = await this.lvm.activate(lv, permanent);
    const path = devicePath(this.vg, lv);
    if (await this.deviceExists(path)) return path;
    throw new BackendError(`activating ${this.vg}/${lv} made no device ${path}`, {
      command,
      exitCode: 0,
      stderrTail: stderr.trim().slice(-2000),
    });
  }

  /** Activates `lv` if it exists; false when it does not. */
  async activateIfPresent(lv: string): Promise<boolean> {
    try {
      await this.activateLocked(lv, false);
      return true;
    } catch (err) {
      if (isLvNotFound(stderrOf(err))) return false;
      throw err;
    }
  }

  /** Deactivation on detach: an LV already gone is fine, and one still open elsewhere stays up. */
  async deactivateQuietly(lv: string): Promise<void> {
    await this.cache.locked(async () => {
      try {
        await this.lvm.deactivate(lv);
      } catch (err) {
        const stderr = stderrOf(err);
        if (!isLvNotFound(stderr) && !/in use|open/i.test(stderr)) throw err;
      }
    });
  }
}
