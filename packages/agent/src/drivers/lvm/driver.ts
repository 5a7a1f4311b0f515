import { access, stat } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import {
  BackendError,
  GIB,
  InvalidArgumentError,
  KindlingError,
  messageOf,
  type Capabilities,
  type ConnectionRecord,
  type ConnectorInfo,
  type Location,
} from '@kindling/protocol';
import type { LvmBackendConfig } from '../../config.js';
import type { Runner } from '../../exec/run.js';
import type { Attachment, Driver, DriverStats, Leftover, Readiness, ScanResult, SnapshotRef, VolumeRef } from '../driver.js';
import { LvmCommands, devicePath, isLvNotFound, isSameSize, mapperPath } from './commands.js';
import { lvmStats } from './figures.js';
import { IscsiExport, defaultTargetIp } from './iscsi.js';
import {
  clearLv,
  cloneSnapshotLv,
  cloneSnapshotTags,
  defaultThinPool,
  parseLvName,
  partialLv,
  revertLv,
  snapshotLv,
  snapshotTags,
  volumeLv,
  volumeTags,
} from './names.js';
import { parseLvs, type LvInfo, type Report } from './report.js';
import { scanReport } from './scan.js';
import { TargetCli, checkInitiator } from './targetcli.js';
import { THIN_POOL_SHARE, VgCache, lvIsThin, type VgWriter } from './vg-cache.js';

/** Warn well before the metadata area fills: LVM hangs on every command once it is full. */
const MDA_WARN_FREE_RATIO = 0.25;
/** How long a thick revert waits for the merge lvm2 finishes in the background (1 s a poll; its poller looks every 15 s). */
const MERGE_POLLS = 120;

export interface LvmDriverDeps {
  run: Runner;
  /** This host's name; a connector naming it gets a local attach (tests override it). */
  hostname?: string;
  /** Whether a device node exists (tests override it; activation without device-mapper makes none). */
  deviceExists?: (path: string) => Promise<boolean>;
  /** Waits between polls of a background merge (tests make it instant). */
  sleep?: (ms: number) => Promise<void>;
  /** LIO's configfs folder (tests point it at a folder of their own). */
  configfs?: string;
}

const blockDeviceExists = async (path: string): Promise<boolean> =>
  stat(path).then(
    (s) => s.isBlockDevice(),
    () => false,
  );

/** lv_attr `O`: an origin whose snapshot is merging into it (the snapshot is hidden meanwhile). */
const isMergingOrigin = (lv: Pick<LvInfo, 'attr'> | null | undefined): boolean => lv?.attr.startsWith('O') ?? false;

const stderrOf = (err: unknown): string =>
  err instanceof KindlingError && typeof err.details.stderrTail === 'string' ? err.details.stderrTail : '';

/** lvm2's first line that is not a warning says what is wrong ('Volume group "x" not found'). */
const lvmReason = (err: unknown): string =>
  stderrOf(err)
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('WARNING')) ?? messageOf(err);

/**
 * Kindling's LVM driver, cinder's LVMVolumeDriver: each operation a short sequence of named lvm2
 * commands inside the VG's write queue, long copies and zeroing outside it. Names on storage mean
 * what recovery.md says: `volume-<id>` only once complete; every other name is a step in between.
 */
export class LvmDriver implements Driver {
  readonly driver = 'lvm' as const;
  readonly name: string;
  private readonly vg: string;
  private readonly lvm: LvmCommands;
  private readonly cache: VgCache;
  private readonly iscsi: IscsiExport;
  private readonly hostname: string;
  private readonly deviceExists: (path: string) => Promise<boolean>;
  private readonly sleep: (ms: number) => Promise<void>;
  /** New volumes are thin: decided at start (auto = thin when the pool exists or the VG is empty, as cinder). */
  private thin: boolean;

  constructor(
    private readonly config: LvmBackendConfig,
    deps: LvmDriverDeps,
  ) {
    this.name = config.name;
    this.vg = config.volumeGroup;
    this.lvm = new LvmCommands(deps.run, this.vg, config.lvmConfFile);
    this.cache = new VgCache(this.lvm, config.thinPool ?? defaultThinPool(config.volumeGroup), config);
    this.iscsi = new IscsiExport(new TargetCli(deps.run, deps.configfs), () => ({
      ip: config.targetIp ?? defaultTargetIp(),
      port: config.targetPort,
    }));
    this.hostname = deps.hostname ?? osHostname();
    this.deviceExists = deps.deviceExists ?? blockDeviceExists;
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.thin = config.lvmType === 'thin';
  }

  // ---- lifecycle and figures ----

  async start(): Promise<void> {
    if (this.config.lvmConfFile) {
      await access(this.config.lvmConfFile).catch(() => {
        throw new InvalidArgumentError(`lvmConfFile ${this.config.lvmConfFile} is not readable`);
      });
    }
    const report = await this.refresh().catch((err: unknown) => {
      throw new BackendError(`volume group ${this.vg} is not usable: ${lvmReason(err)}`, err instanceof KindlingError ? err.details : {});
    });
    if (this.config.lvmType === 'auto') this.thin = report.lvs.has(this.cache.pool) || report.vg.lvCount === 0;
  }

  async readiness(): Promise<Readiness> {
    // Only a backend that never saw its VG reads again here, so it can recover; /readyz stays cheap.
    let report = this.cache.current;
    if (!report) {
      try {
        report = await this.refresh();
      } catch (err) {
        return { ready: false, reason: `volume group ${this.vg} is not usable: ${lvmReason(err)}` };
      }
    }
    const { mdaFree, mdaSize } = report.vg;
    if (mdaSize > 0 && mdaFree < mdaSize * MDA_WARN_FREE_RATIO) {
      return {
        ready: true,
        warnings: [
          `volume group ${this.vg} metadata area is nearly full (${mdaFree} of ${mdaSize} bytes free); ` +
            'LVM stops working when it fills',
        ],
      };
    }
    return { ready: true };
  }

  capabilities(): Capabilities {
    // Snapshots, clones and reverts need device-mapper at run time; as configured they are supported.
    return {
      snapshot: true,
      snapshotInUse: true,
      clone: true,
      createFromSnapshot: true,
      revertToSnapshot: true,
      extend: true,
      extendWithSnapshots: true,
      extendInUseWithSnapshots: this.thin,
      attach: true,
      connect: true,
      thin: this.thin,
      protocols: ['iscsi'],
    };
  }

  async stats(refresh: boolean): Promise<DriverStats> {
    const current = this.cache.current;
    const report = refresh || !current ? await this.refresh() : current;
    return lvmStats(report, this.cache, this.thin, this.config);
  }

  // ---- volumes ----

  createVolume(volume: VolumeRef): Promise<Location> {
    const lv = volumeLv(volume.id);
    return this.cache.locked((w) => this.createLocked(w, lv, volume));
  }

  /** Resumable: an interrupted zeroing is found under its aside name and finished. */
  async deleteVolume(volume: VolumeRef): Promise<void> {
    const lv = volumeLv(volume.id);
    if (this.config.volumeClear === 'zero' && !(await this.isThin(volume.location, lv))) {
      return this.clearAside(lv, volume.size * GIB, false);
    }
    await this.cache.locked((w) => this.removeLocked(w, lv));
  }

  /** Resumable: a retried lvextend that finds the size already reached counts as done. */
  async extendVolume(volume: VolumeRef, newSize: number): Promise<Location> {
    const lv = volumeLv(volume.id);
    const thin = await this.isThin(volume.location, lv);
    return this.cache.locked(async (w) => {
      w.checkSpace(newSize - volume.size, thin);
      if (!thin && this.cache.hasThickSnapshots(lv)) {
        // An origin with COW snapshots can only be resized inactive (cinder's extend_volume).
        await this.lvm.deactivate(lv);
        await this.extendLocked(w, lv, newSize);
        await this.activateLocked(lv, false);
      } else {
        await this.extendLocked(w, lv, newSize);
      }
      return this.location(lv, thin);
    });
  }

  // ---- snapshots ----

  async createSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ snapshot: Location; volume: Location }> {
    const lv = snapshotLv(snapshot.id);
    const origin = volumeLv(volume.id);
    const tags = snapshotTags(snapshot.id, volume.id);
    const thin = await this.isThin(volume.location, origin);
    return this.cache.locked(async (w) => {
      await this.snapshotLocked(w, lv, origin, tags, thin, volume.size);
      return { snapshot: this.location(lv, thin), volume: volume.location };
    });
  }

  async deleteSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ volume: Location }> {
    const lv = snapshotLv(snapshot.id);
    const thin = typeof snapshot.location.thin === 'boolean' ? snapshot.location.thin : await this.isThin(volume.location, lv);
    if (this.config.volumeClear === 'zero' && !thin) {
      // The copy-on-write store holds the volume's old blocks (cinder zeroes it too).
      await this.clearAside(lv, snapshot.volumeSize * GIB, true);
    } else {
      await this.cache.locked((w) => this.removeLocked(w, lv));
    }
    return { volume: volume.location };
  }

  async createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef, source: VolumeRef): Promise<Location> {
    const snap = snapshotLv(snapshot.id);
    if (await this.isThin(source.location, volumeLv(source.id))) {
      return this.thinCopy(volume, snap, snapshot.volumeSize);
    }
    return this.copyInto(volume, snap, snapshot.volumeSize, async () => {
      await this.activateLocked(snap, false);
    });
  }

  async cloneVolume(volume: VolumeRef, source: VolumeRef): Promise<Location> {
    const src = volumeLv(source.id);
    if (await this.isThin(source.location, src)) return this.thinCopy(volume, src, source.size);
    // A thick clone copies from a short-lived snapshot, so the source may stay in use (cinder's way).
    const temp = cloneSnapshotLv(volume.id);
    let active = false;
    try {
      return await this.copyInto(volume, temp, source.size, async (w) => {
        await this.snapshotLocked(w, temp, src, cloneSnapshotTags(volume.id), false, source.size);
        await this.activateLocked(temp, false);
        active = true;
      });
    } finally {
      // Its copy-on-write store holds the source's old blocks: zeroed as a snapshot delete would.
      const cow = source.size * GIB;
      const zero = active && this.config.volumeClear === 'zero';
      await (zero ? this.zeroAndRemove(temp, cow, true) : this.discard(temp, cow, false)).catch(() => undefined);
    }
  }

  /** Resumable from any step: see recovery.md. */
  async revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<Location> {
    const lv = volumeLv(volume.id);
    const thin = await this.isThin(volume.location, lv);
    return this.cache.locked(async (w) => {
      // What an interrupted earlier attempt left decides where this one resumes: read it, not the cache.
      const report = await w.refresh();
      if (thin) await this.revertThinLocked(w, report, volume, snapshot);
      else await this.revertThickLocked(w, report, volume, snapshot);
      return this.location(lv, thin);
    });
  }

  // ---- attachments ----

  async attach(volume: VolumeRef): Promise<Attachment> {
    const lv = volumeLv(volume.id);
    const path = await this.cache.locked(() => this.activateLocked(lv, false));
    return { path, connectionInfo: { driverVolumeType: 'local', data: { device_path: path } } };
  }

  async detach(volume: VolumeRef, _connection: ConnectionRecord): Promise<void> {
    await this.deactivateQuietly(volumeLv(volume.id));
  }

  validateConnector(connector: ConnectorInfo): void {
    if (this.isLocal(connector)) return;
    checkInitiator(connector.initiator);
  }

  async connect(volume: VolumeRef, connector: ConnectorInfo, others: ConnectionRecord[]): Promise<Attachment> {
    if (this.isLocal(connector)) return this.attach(volume);
    const lv = volumeLv(volume.id);
    const activate = (): Promise<string> => this.cache.locked(() => this.activateLocked(lv, false));
    const info = await this.iscsi.connect(volume.id, lv, checkInitiator(connector.initiator), others, activate);
    return { path: null, connectionInfo: info };
  }

  async disconnect(volume: VolumeRef, connection: ConnectionRecord, others: ConnectionRecord[]): Promise<void> {
    const lv = volumeLv(volume.id);
    if (connection.connectionInfo.driverVolumeType === 'iscsi') {
      await this.iscsi.disconnect(lv, checkInitiator(connection.connectorInfo.initiator), others);
    }
    if (others.length === 0) await this.deactivateQuietly(lv);
  }

  async connectionSize(volume: VolumeRef, _connection: ConnectionRecord): Promise<number> {
    const lv = volumeLv(volume.id);
    const found = this.cache.lv(lv) ?? (await this.lookup(lv));
    if (!found) throw new BackendError(`logical volume ${this.vg}/${lv} not found`);
    return found.size;
  }

  // ---- what storage holds ----

  async scan(): Promise<ScanResult> {
    return scanReport(await this.refresh());
  }

  /**
   * Finishes or takes away one leftover (recovery.md): a thick one is zeroed first, as a delete would
   * (a `pending-clear` one always: it exists only because zeroing was due); a thin revert's new LV whose
   * old volume is already gone is the reverted volume, so it is renamed into place, never removed.
   */
  async removeLeftover(leftover: Leftover): Promise<void> {
    const lv = leftover.where.startsWith(`${this.vg}/`) ? leftover.where.slice(this.vg.length + 1) : '';
    const role = parseLvName(lv)?.role;
    if (!role || ['volume', 'snapshot'].includes(role)) {
      throw new InvalidArgumentError(`not a leftover of this backend: ${leftover.where}`, { where: leftover.where });
    }
    if (role === 'revert') return this.settleRevert(leftover.id);
    const info = await this.lookup(lv);
    if (!info) return;
    const zero = !lvIsThin(info) && (role.startsWith('clear-') || this.config.volumeClear === 'zero');
    await this.discard(lv, info.size, zero, info.origin !== '');
  }

  // ---- steps (the *Locked ones run inside the VG's write queue) ----

  private refresh(): Promise<Report> {
    return this.cache.locked((w) => w.refresh());
  }

  private location(lv: string, thin: boolean): Location {
    return { vg: this.vg, lv, thin };
  }

  /** One LV as lvm2 reports it now, or null when it is not there. */
  private async lookup(lv: string): Promise<LvInfo | null> {
    try {
      return parseLvs((await this.lvm.lvs(lv)).stdout)[0] ?? null;
    } catch (err) {
      if (isLvNotFound(stderrOf(err))) return null;
      throw err;
    }
  }

  /**
   * Whether a volume is thin, from its record; a record from before `thin` was kept asks lvm2. Never
   * the cache: zeroing hangs on this, and a stale answer would free a tenant's data unzeroed.
   */
  private async isThin(location: Location, lv: string): Promise<boolean> {
    if (typeof location.thin === 'boolean') return location.thin;
    const found = (await this.lookup(lv)) ?? (await this.lookup(clearLv(lv)));
    return found ? lvIsThin(found) : this.thin;
  }

  private async createLocked(w: VgWriter, lv: string, volume: VolumeRef): Promise<Location> {
    const tags = volumeTags(volume.id);
    if (this.thin) {
      await this.ensurePoolLocked(w);
      w.checkSpace(volume.size, true);
      await this.lvm.createThin(lv, volume.size, this.cache.pool, tags);
      w.added({ name: lv, size: volume.size * GIB, tags, attr: 'Vwi-a-tz--', origin: '', poolLv: this.cache.pool });
    } else {
      w.checkSpace(volume.size, false);
      await this.lvm.createLinear(lv, volume.size, tags);
      w.added({ name: lv, size: volume.size * GIB, tags, attr: '-wi-a-----', origin: '', poolLv: '' });
    }
    return this.location(volumeLv(volume.id), this.thin);
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

  private async snapshotLocked(w: VgWriter, lv: string, origin: string, tags: string[], thin: boolean, sizeGb: number): Promise<void> {
    if (!thin) w.checkSpace(sizeGb, false);
    await this.lvm.createSnapshot(lv, origin, tags, thin ? null : sizeGb);
    const poolLv = thin ? this.cache.pool : '';
    w.added({ name: lv, size: sizeGb * GIB, tags, attr: thin ? 'Vwi---tz-k' : 'swi-a-s---', origin, poolLv });
  }

  private async extendLocked(w: VgWriter, lv: string, sizeGb: number): Promise<void> {
    await this.lvm.extend(lv, sizeGb).catch((err: unknown) => {
      if (!isSameSize(stderrOf(err))) throw err;
    });
    w.resized(lv, sizeGb);
  }

  private async renameLocked(w: VgWriter, from: string, to: string): Promise<void> {
    await this.lvm.rename(from, to);
    w.renamed(from, to);
  }

  /** `lvremove -f`, retried once with cinder's settings; an LV already gone counts as removed. */
  private async removeLocked(w: VgWriter, lv: string): Promise<void> {
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
   * A thin volume as a thin snapshot of `source` (cinder's thin path), grown to the volume's size and
   * activated for good. One lvcreate is complete as made; with a grow it is built under its partial
   * name and renamed last, so `volume-<id>` never names a copy of the wrong size.
   */
  private thinCopy(volume: VolumeRef, source: string, sourceGb: number): Promise<Location> {
    const lv = volumeLv(volume.id);
    const build = volume.size > sourceGb ? partialLv(volume.id) : lv;
    return this.cache.locked(async (w) => {
      let made = false;
      try {
        await this.snapshotLocked(w, build, source, volumeTags(volume.id), true, sourceGb);
        made = true;
        await this.finishThinLocked(w, build, volume.size, sourceGb);
        if (build !== lv) await this.renameLocked(w, build, lv);
        return this.location(lv, true);
      } catch (err) {
        if (made) await this.removeLocked(w, build).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Grows a new thin snapshot to `sizeGb` and activates it, clearing the activation-skip flag. */
  private async finishThinLocked(w: VgWriter, lv: string, sizeGb: number, sourceGb: number): Promise<void> {
    if (sizeGb > sourceGb) await this.extendLocked(w, lv, sizeGb);
    await this.activateLocked(lv, true);
  }

  /**
   * A new volume filled with `dd` from `from` under its partial name: `prepare` makes `from` ready
   * inside the queue, the copy runs outside it (a long dd does not hold up the VG's other writes) and
   * is flushed, and the rename to `volume-<id>` is the last step.
   */
  private async copyInto(volume: VolumeRef, from: string, sizeGb: number, prepare: (w: VgWriter) => Promise<void>): Promise<Location> {
    const part = partialLv(volume.id);
    const lv = volumeLv(volume.id);
    const thin = this.thin;
    let made = false;
    try {
      await this.cache.locked(async (w) => {
        await prepare(w);
        await this.createLocked(w, part, volume);
        made = true;
        await this.activateLocked(part, false);
      });
      await this.lvm.copy(from, part, sizeGb, thin);
      await this.cache.locked((w) => this.renameLocked(w, part, lv));
      return this.location(lv, thin);
    } catch (err) {
      // A half-copy holds the source's data: zeroed (when thick) before its extents are freed.
      if (made) await this.discard(part, volume.size * GIB, !thin && this.config.volumeClear === 'zero').catch(() => undefined);
      throw err;
    }
  }

  /** Removes a temporary LV, zeroing it (or its copy-on-write store) first when `zero`; a missing one is done. */
  private async discard(lv: string, bytes: number, zero: boolean, cow = false): Promise<void> {
    if (!zero) return this.cache.locked((w) => this.removeLocked(w, lv));
    if (await this.cache.locked(() => this.activateIfPresent(lv))) await this.zeroAndRemove(lv, bytes, cow);
  }

  /**
   * cinder's volume_clear without holding the VG: rename the LV aside inside the queue (activated
   * first, so a failure there changes nothing), zero it outside, remove it inside. A crash while
   * zeroing leaves `clear-<lv>`: a `pending-clear` leftover, or found here again by a retried delete.
   */
  private async clearAside(lv: string, bytes: number, cow: boolean): Promise<void> {
    const aside = clearLv(lv);
    const found = await this.cache.locked(async (w) => {
      if (await this.activateIfPresent(lv)) {
        await this.renameLocked(w, lv, aside);
        return true;
      }
      return this.activateIfPresent(aside);
    });
    if (found) await this.zeroAndRemove(aside, bytes, cow);
  }

  /** Zeroes an active LV (a thick snapshot: its `-cow` store) outside the queue, then removes it inside. */
  private async zeroAndRemove(lv: string, bytes: number, cow: boolean): Promise<void> {
    await this.lvm.zero(cow ? `${mapperPath(this.vg, lv)}-cow` : devicePath(this.vg, lv), bytes);
    await this.cache.locked((w) => this.removeLocked(w, lv));
  }

  /**
   * Thin revert: the snapshot's data is built beside the volume as `revert-<id>`, the old volume is
   * removed, and the new one renamed into place. A second call finishes from any step.
   */
  private async revertThinLocked(w: VgWriter, report: Report, volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    const lv = volumeLv(volume.id);
    const next = revertLv(volume.id);
    if (report.lvs.has(next)) {
      // The old volume is removed only once the new one is complete: then only the rename is left.
      if (!report.lvs.has(lv)) return this.renameLocked(w, next, lv);
      // Both there: the new one may be partial. Start again.
      await this.removeLocked(w, next);
    }
    try {
      await this.snapshotLocked(w, next, snapshotLv(snapshot.id), volumeTags(volume.id), true, snapshot.volumeSize);
      await this.finishThinLocked(w, next, volume.size, snapshot.volumeSize);
    } catch (err) {
      // A half-made copy left behind would make every later revert start by removing it anyway.
      await this.removeLocked(w, next).catch(() => undefined);
      throw err;
    }
    await this.removeLocked(w, lv);
    await this.renameLocked(w, next, lv);
  }

  /**
   * Thick revert, cinder's: merge the snapshot into the volume (lvm2 consumes the snapshot), cycle
   * the volume's activation (starts a merge deferred because the volume was inactive or open), then
   * re-create the snapshot under its name so its record stays true. A second call after a crash: a
   * snapshot still there is merged; a merge already started (the volume's lv_attr `O`, the snapshot
   * hidden) is waited for; a snapshot gone was merged; then the rest runs again.
   */
  private async revertThickLocked(w: VgWriter, report: Report, volume: VolumeRef, snapshot: SnapshotRef): Promise<void> {
    const lv = volumeLv(volume.id);
    const snap = snapshotLv(snapshot.id);
    let background = isMergingOrigin(report.lvs.get(lv));
    if (report.lvs.has(snap) && !background) {
      // lvconvert waits for the merge, unless the volume is inactive or open: then it runs on the next activation.
      const { stdout, stderr } = await this.lvm.merge(snap);
      background = /Delaying merge|next activation/i.test(stdout + stderr);
    }
    await this.lvm.deactivate(lv);
    await this.activateLocked(lv, false);
    if (background) await this.waitMerged(lv);
    w.forgot(snap);
    await this.snapshotLocked(w, snap, lv, snapshotTags(snapshot.id, volume.id), false, volume.size);
  }

  /** lvm2 finishes a merge started by activation in the background, then drops the snapshot LV. */
  private async waitMerged(lv: string): Promise<void> {
    for (let i = 0; i < MERGE_POLLS; i++) {
      if (!isMergingOrigin(await this.lookup(lv))) return;
      await this.sleep(1000);
    }
    throw new BackendError(`the merge into ${this.vg}/${lv} did not finish`);
  }

  /** A leftover `revert-<id>`: removed when the old volume is still there, else renamed into place. */
  private settleRevert(volumeId: string): Promise<void> {
    const lv = volumeLv(volumeId);
    const next = revertLv(volumeId);
    return this.cache.locked(async (w) => {
      if (!(await this.lookup(next))) return;
      if (await this.lookup(lv)) await this.removeLocked(w, next);
      else await this.renameLocked(w, next, lv);
    });
  }

  /**
   * Activates and returns the device path. Without device-mapper, lvm2 with activation disabled
   * "succeeds" but makes no device node: that is a failure, reported like any failed command.
   */
  private async activateLocked(lv: string, permanent: boolean): Promise<string> {
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
  private async activateIfPresent(lv: string): Promise<boolean> {
    try {
      await this.activateLocked(lv, false);
      return true;
    } catch (err) {
      if (isLvNotFound(stderrOf(err))) return false;
      throw err;
    }
  }

  /** Deactivation on detach: an LV already gone is fine, and one still open elsewhere stays up. */
  private async deactivateQuietly(lv: string): Promise<void> {
    await this.cache.locked(async () => {
      try {
        await this.lvm.deactivate(lv);
      } catch (err) {
        const stderr = stderrOf(err);
        if (!isLvNotFound(stderr) && !/in use|open/i.test(stderr)) throw err;
      }
    });
  }

  private isLocal(connector: ConnectorInfo): boolean {
    return connector.host === this.hostname;
  }
}
