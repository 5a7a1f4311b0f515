import { access, stat } from 'node:fs/promises';
import { hostname as osHostname, networkInterfaces } from 'node:os';
import {
  BackendError,
  ConflictError,
  InvalidArgumentError,
  KindlingError,
  type Capabilities,
  type ConnectionRecord,
  type ConnectorInfo,
  type Location,
} from '@kindling/protocol';
import type { LvmBackendConfig } from '../../config.js';
import type { Runner } from '../../exec/run.js';
import type { Attachment, Driver, DriverStats, Readiness, ScanResult, SnapshotRef, VolumeRef } from '../driver.js';
import { LvmCommands, devicePath, isLvNotFound, mapperPath } from './commands.js';
import { DEFAULT_PORTAL, TargetCli, checkInitiator, generateChap, targetIqn } from './iscsi.js';
import {
  TAG_ID,
  TAG_KIND,
  TAG_VOLUME_OF,
  cloneSnapshotLv,
  defaultThinPool,
  isUuid,
  snapshotLv,
  snapshotTags,
  volumeLv,
  volumeTags,
} from './names.js';
import { withVgLock } from './queue.js';
import { parseFullReport, parseLvs, type LvInfo, type Report } from './report.js';

const GIB = 1024 ** 3;
const DRIVER_VERSION = '1.0.0';
/** cinder's create_thin_pool leaves 5% of the VG's free space for pool metadata and spare. */
const THIN_POOL_SHARE = 0.95;
/** Warn well before the metadata area fills: LVM hangs on every command once it is full. */
const MDA_WARN_FREE_RATIO = 0.25;

export interface LvmDriverDeps {
  run: Runner;
  /** This host's name; a connector naming it gets a local attach (tests override it). */
  hostname?: string;
  /** Whether a device node exists (tests override it; activation without device-mapper makes none). */
  deviceExists?: (path: string) => Promise<boolean>;
}

const blockDeviceExists = async (path: string): Promise<boolean> =>
  stat(path).then(
    (s) => s.isBlockDevice(),
    () => false,
  );

const round2 = (n: number): number => Math.round(n * 100) / 100;
const toGb = (bytes: number): number => round2(bytes / GIB);

/** The first external IPv4 address: where other hosts reach this one when `targetIp` is not set. */
function defaultTargetIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    const found = addrs?.find((a) => a.family === 'IPv4' && !a.internal);
    if (found) return found.address;
  }
  throw new InvalidArgumentError('no external IPv4 address for iSCSI; set targetIp on the backend');
}

const stderrOf = (err: unknown): string =>
  err instanceof KindlingError && typeof err.details.stderrTail === 'string' ? err.details.stderrTail : '';

/** lvm2's first line that is not a warning says what is wrong ('Volume group "x" not found'). */
const lvmReason = (err: unknown): string =>
  stderrOf(err)
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('WARNING')) ?? (err instanceof Error ? err.message : String(err));

export class LvmDriver implements Driver {
  readonly driver = 'lvm' as const;
  readonly name: string;
  private readonly vg: string;
  private readonly pool: string;
  private readonly lvm: LvmCommands;
  private readonly targets: TargetCli;
  private readonly hostname: string;
  private readonly deviceExists: (path: string) => Promise<boolean>;
  /** The last report, kept current arithmetically after each change; re-read on stats(true) and scan(). */
  private report: Report | null = null;
  /** New volumes are thin: decided at start (auto = thin when the pool exists or the VG is empty, as cinder). */
  private thin: boolean;

  constructor(
    private readonly config: LvmBackendConfig,
    deps: LvmDriverDeps,
  ) {
    this.name = config.name;
    this.vg = config.volumeGroup;
    this.pool = config.thinPool ?? defaultThinPool(config.volumeGroup);
    this.lvm = new LvmCommands(deps.run, this.vg, config.lvmConfFile);
    this.targets = new TargetCli(deps.run);
    this.hostname = deps.hostname ?? osHostname();
    this.deviceExists = deps.deviceExists ?? blockDeviceExists;
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
    if (this.config.lvmType === 'auto') this.thin = report.lvs.has(this.pool) || report.vg.lvCount === 0;
  }

  async readiness(): Promise<Readiness> {
    // Only a backend that never saw its VG reads again here, so it can recover; /readyz stays cheap.
    let report = this.report;
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
    const report = refresh || !this.report ? await this.refresh() : this.report;
    const { vg } = report;
    const pool = report.lvs.get(this.pool);
    const base = {
      vendorName: 'Open Source',
      driverVersion: DRIVER_VERSION,
      storageProtocol: 'iSCSI',
      thinProvisioningSupport: this.thin,
      thickProvisioningSupport: !this.thin,
      maxOverSubscriptionRatio: this.config.maxOverSubscriptionRatio,
      reservedPercentage: this.config.reservedPercentage,
    };
    const extra: Record<string, number> = { vgMdaFreeBytes: vg.mdaFree, vgMdaSizeBytes: vg.mdaSize };
    if (this.thin && pool) {
      // cinder's thin figures: the pool's size, its unused data share, and the virtual sizes in it.
      const dataPercent = pool.dataPercent ?? 0;
      extra.thinPoolDataPercent = dataPercent;
      extra.thinPoolMetadataPercent = pool.metadataPercent ?? 0;
      return {
        ...base,
        totalCapacityGb: toGb(pool.size),
        freeCapacityGb: toGb(pool.size * (1 - dataPercent / 100)),
        provisionedCapacityGb: toGb(this.thinProvisioned(report)),
        extra,
      };
    }
    return {
      ...base,
      totalCapacityGb: toGb(vg.size),
      freeCapacityGb: toGb(vg.free),
      provisionedCapacityGb: toGb(vg.size - vg.free),
      extra,
    };
  }

  // ---- volumes ----

  createVolume(volume: VolumeRef): Promise<Location> {
    const lv = volumeLv(volume.id);
    return this.locked(() => this.createVolumeLocked(lv, volume));
  }

  async deleteVolume(volume: VolumeRef): Promise<void> {
    const lv = volumeLv(volume.id);
    await this.locked(() => this.clearAndRemoveLocked(lv));
  }

  extendVolume(volume: VolumeRef, newSize: number): Promise<Location> {
    const lv = volumeLv(volume.id);
    return this.locked(async () => {
      const thin = this.volumeIsThin(volume);
      this.checkSpace(newSize - volume.size, thin);
      if (!thin && this.hasThickSnapshots(lv)) {
        // An origin with COW snapshots can only be resized inactive (cinder's extend_volume).
        await this.lvm.deactivate(lv);
        await this.lvm.extend(lv, newSize);
        this.resized(lv, newSize, thin);
        await this.activateLocked(lv, false);
      } else {
        await this.lvm.extend(lv, newSize);
        this.resized(lv, newSize, thin);
      }
      return this.location(lv, thin);
    });
  }

  // ---- snapshots ----

  createSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ snapshot: Location; volume: Location }> {
    const lv = snapshotLv(snapshot.id);
    const origin = volumeLv(volume.id);
    const tags = snapshotTags(snapshot.id, volume.id);
    return this.locked(async () => {
      const thin = this.volumeIsThin(volume);
      await this.snapshotLocked(lv, origin, tags, thin, volume.size);
      return { snapshot: this.location(lv, thin), volume: volume.location };
    });
  }

  async deleteSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ volume: Location }> {
    const lv = snapshotLv(snapshot.id);
    await this.locked(() => this.clearAndRemoveLocked(lv));
    return { volume: volume.location };
  }

  async createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef, source: VolumeRef): Promise<Location> {
    const lv = volumeLv(volume.id);
    const snap = snapshotLv(snapshot.id);
    if (this.volumeIsThin(source)) {
      return this.locked(() => this.thinCopyLocked(lv, volumeTags(volume.id), snap, volume.size, snapshot.volumeSize));
    }
    return this.copyInto(volume, snap, snapshot.volumeSize, async () => {
      await this.activateLocked(snap, false);
    });
  }

  async cloneVolume(volume: VolumeRef, source: VolumeRef): Promise<Location> {
    const lv = volumeLv(volume.id);
    const src = volumeLv(source.id);
    if (this.volumeIsThin(source)) {
      return this.locked(() => this.thinCopyLocked(lv, volumeTags(volume.id), src, volume.size, source.size));
    }
    // A thick clone copies from a short-lived snapshot, so the source may stay in use (cinder's way).
    const temp = cloneSnapshotLv(volume.id);
    try {
      return await this.copyInto(volume, temp, source.size, async () => {
        await this.snapshotLocked(temp, src, [], false, source.size);
        await this.activateLocked(temp, false);
      });
    } finally {
      await this.locked(() => this.clearAndRemoveLocked(temp)).catch(() => undefined);
    }
  }

  revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<Location> {
    const lv = volumeLv(volume.id);
    const snap = snapshotLv(snapshot.id);
    return this.locked(async () => {
      if (this.volumeIsThin(volume)) {
        // Build the reverted volume beside the old one first, so a failure loses nothing; then swap names.
        const next = `revert-${volume.id}`;
        try {
          await this.thinCopyLocked(next, volumeTags(volume.id), snap, volume.size, snapshot.volumeSize);
        } catch (err) {
          // A half-made copy left behind would make every later revert fail with "already exists".
          await this.removeLocked(next).catch(() => undefined);
          throw err;
        }
        await this.removeLocked(lv);
        await this.lvm.rename(next, lv);
        this.renamed(next, lv);
        return this.location(lv, true);
      }
      // The merge consumes the snapshot; cinder re-creates it under the same name so its record stays true.
      await this.lvm.merge(snap);
      this.forget(snap);
      // Cycling the origin starts a merge that was deferred because the origin was active.
      await this.lvm.deactivate(lv);
      await this.activateLocked(lv, false);
      await this.snapshotLocked(snap, lv, snapshotTags(snapshot.id, volume.id), false, volume.size);
      return this.location(lv, false);
    });
  }

  // ---- attachments ----

  async attach(volume: VolumeRef): Promise<Attachment> {
    const lv = volumeLv(volume.id);
    const path = await this.locked(() => this.activateLocked(lv, false));
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
    const initiator = checkInitiator(connector.initiator);
    const lv = volumeLv(volume.id);
    const iqn = targetIqn(lv);
    const iscsiOthers = others.filter((c) => c.connectionInfo.driverVolumeType === 'iscsi');
    // The same initiator already has its ACL: hand back the credentials it was given.
    const sameInitiator = iscsiOthers.find((c) => c.connectorInfo.initiator === initiator);
    if (sameInitiator) return { path: null, connectionInfo: sameInitiator.connectionInfo };

    const portal = {
      ip: this.config.targetIp ?? defaultTargetIp(),
      port: this.config.targetPort,
    };
    const firstExport = iscsiOthers.length === 0;
    const chap = generateChap();
    try {
      if (firstExport) {
        const device = await this.locked(() => this.activateLocked(lv, false));
        await this.targets.createBackstore(lv, device);
        await this.targets.createTarget(iqn);
        await this.targets.createLun(iqn, lv);
        await this.targets.requireAuth(iqn);
        if (portal.port !== DEFAULT_PORTAL.port) {
          // The default portal listens on every address at 3260; another port needs its own portal.
          await this.targets.deletePortal(iqn, DEFAULT_PORTAL.ip, DEFAULT_PORTAL.port);
          await this.targets.createPortal(iqn, portal.ip, portal.port);
        }
      }
      await this.targets.createAcl(iqn, initiator);
      await this.targets.setAclAuth(iqn, initiator, chap.username, chap.password);
      await this.targets.saveConfig();
    } catch (err) {
      // A half-made export would make the next connect fail with "already exists": take it down.
      if (firstExport) {
        await this.targets.deleteTarget(iqn).catch(() => undefined);
        await this.targets.deleteBackstore(lv).catch(() => undefined);
      }
      throw err;
    }
    return {
      path: null,
      connectionInfo: {
        driverVolumeType: 'iscsi',
        data: {
          target_discovered: false,
          target_iqn: iqn,
          target_portal: `${portal.ip}:${portal.port}`,
          target_lun: 0,
          volume_id: volume.id,
          auth_method: 'CHAP',
          auth_username: chap.username,
          auth_password: chap.password,
        },
      },
    };
  }

  async disconnect(volume: VolumeRef, connection: ConnectionRecord, others: ConnectionRecord[]): Promise<void> {
    const lv = volumeLv(volume.id);
    if (connection.connectionInfo.driverVolumeType === 'iscsi') {
      const iqn = targetIqn(lv);
      const initiator = checkInitiator(connection.connectorInfo.initiator);
      const iscsiOthers = others.filter((c) => c.connectionInfo.driverVolumeType === 'iscsi');
      if (!iscsiOthers.some((c) => c.connectorInfo.initiator === initiator)) {
        await this.tolerateMissing(this.targets.deleteAcl(iqn, initiator));
      }
      if (iscsiOthers.length === 0) {
        await this.tolerateMissing(this.targets.deleteTarget(iqn));
        await this.tolerateMissing(this.targets.deleteBackstore(lv));
      }
      await this.targets.saveConfig();
    }
    if (others.length === 0) await this.deactivateQuietly(lv);
  }

  async connectionSize(volume: VolumeRef, _connection: ConnectionRecord): Promise<number> {
    const lv = volumeLv(volume.id);
    const known = this.cached(lv);
    if (known) return known.size;
    const [found] = parseLvs((await this.lvm.lvs(lv)).stdout);
    if (!found) throw new BackendError(`logical volume ${this.vg}/${lv} not found`);
    return found.size;
  }

  // ---- index rebuild ----

  async scan(): Promise<ScanResult> {
    const report = await this.refresh();
    const result: ScanResult = { volumes: [], snapshots: [], leftovers: [], strays: [] };
    for (const lv of report.lvs.values()) {
      const kind = tagValue(lv, TAG_KIND);
      // A snapshot LV may inherit its origin's tags; the id that also names the LV is the true one.
      const id = lv.tags
        .filter((t) => t.startsWith(TAG_ID))
        .map((t) => t.slice(TAG_ID.length))
        .find((candidate) => isUuid(candidate) && lvNameFor(kind, candidate) === lv.name);
      if (!id) continue;
      const location = this.location(lv.name, this.lvIsThin(lv));
      if (kind === 'volume') {
        result.volumes.push({ id, size: Math.ceil(lv.size / GIB), location });
      } else {
        const volumeId = tagValue(lv, TAG_VOLUME_OF);
        if (volumeId && isUuid(volumeId)) result.snapshots.push({ id, volumeId, location });
      }
    }
    return result;
  }

  async removeLeftover(): Promise<void> {}

  // ---- internals (the *Locked methods run inside this VG's write queue) ----

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return withVgLock(this.vg, fn);
  }

  private async refresh(): Promise<Report> {
    const { stdout } = await this.lvm.fullReport();
    this.report = parseFullReport(stdout, this.vg);
    return this.report;
  }

  private cached(lv: string): LvInfo | undefined {
    return this.report?.lvs.get(lv);
  }

  private location(lv: string, thin: boolean): Location {
    return { vg: this.vg, lv, thin };
  }

  private lvIsThin(lv: Pick<LvInfo, 'poolLv' | 'attr'>): boolean {
    return lv.poolLv !== '' || lv.attr.startsWith('V');
  }

  /** What the record says, else what LVM says, else how this backend makes volumes now. */
  private volumeIsThin(volume: VolumeRef): boolean {
    if (typeof volume.location.thin === 'boolean') return volume.location.thin;
    const known = this.cached(volumeLv(volume.id));
    return known ? this.lvIsThin(known) : this.thin;
  }

  private hasThickSnapshots(lv: string): boolean {
    for (const other of this.report?.lvs.values() ?? []) if (other.origin === lv && !this.lvIsThin(other)) return true;
    return false;
  }

  private thinProvisioned(report: Report): number {
    let sum = 0;
    for (const lv of report.lvs.values()) if (lv.poolLv === this.pool) sum += lv.size;
    return sum;
  }

  private roundToExtent(bytes: number): number {
    const extent = this.report?.vg.extentSize ?? 4 * 1024 * 1024;
    return Math.ceil(bytes / extent) * extent;
  }

  /**
   * Refuses, before any lvcreate/lvextend runs, a request the cached figures say cannot fit: thick
   * against the VG's free space less the reserve, thin against the pool times the over-subscription ratio.
   */
  private checkSpace(sizeGb: number, thin: boolean): void {
    const report = this.report;
    if (!report || sizeGb <= 0) return;
    const requested = this.roundToExtent(sizeGb * GIB);
    let free: number;
    if (thin) {
      const poolSize = report.lvs.get(this.pool)?.size ?? Math.floor(report.vg.free * THIN_POOL_SHARE);
      free = poolSize * this.config.maxOverSubscriptionRatio - this.thinProvisioned(report);
    } else {
      free = report.vg.free - report.vg.size * (this.config.reservedPercentage / 100);
    }
    if (requested > free) {
      throw new ConflictError(`not enough space in ${this.vg}${thin ? `/${this.pool}` : ''} for ${sizeGb} GiB`, {
        requestedGb: sizeGb,
        freeGb: toGb(Math.max(0, free)),
      });
    }
  }

  private async createVolumeLocked(lv: string, volume: VolumeRef): Promise<Location> {
    const tags = volumeTags(volume.id);
    if (this.thin) {
      await this.ensurePoolLocked();
      this.checkSpace(volume.size, true);
      await this.lvm.createThin(lv, volume.size, this.pool, tags);
      this.added({ name: lv, size: volume.size * GIB, tags, attr: 'Vwi-a-tz--', origin: '', poolLv: this.pool });
    } else {
      this.checkSpace(volume.size, false);
      await this.lvm.createLinear(lv, volume.size, tags);
      this.added({ name: lv, size: this.roundToExtent(volume.size * GIB), tags, attr: '-wi-a-----', origin: '', poolLv: '' });
    }
    return this.location(lv, this.thin);
  }

  /** cinder's create_thin_pool on first use: 95% of the VG's free space. */
  private async ensurePoolLocked(): Promise<void> {
    const report = this.report ?? (await this.refresh());
    if (report.lvs.has(this.pool)) return;
    const extent = report.vg.extentSize;
    const size = Math.floor((report.vg.free * THIN_POOL_SHARE) / extent) * extent;
    await this.lvm.createThinPool(this.pool, size);
    // Once per backend: the pool's metadata and spare LVs take space only a fresh report shows.
    await this.refresh();
  }

  private async snapshotLocked(lv: string, origin: string, tags: string[], thin: boolean, sizeGb: number): Promise<void> {
    if (!thin) this.checkSpace(sizeGb, false);
    await this.lvm.createSnapshot(lv, origin, tags, thin ? null : sizeGb);
    const poolLv = thin ? this.pool : '';
    const size = thin ? sizeGb * GIB : this.roundToExtent(sizeGb * GIB);
    this.added({ name: lv, size, tags, attr: thin ? 'Vwi---tz-k' : 'swi-a-s---', origin, poolLv });
  }

  /** A thin volume as a thin snapshot of `source`, grown to `sizeGb`, activated for good (cinder's thin path). */
  private async thinCopyLocked(lv: string, tags: string[], source: string, sizeGb: number, sourceGb: number): Promise<Location> {
    await this.snapshotLocked(lv, source, tags, true, sourceGb);
    if (sizeGb > sourceGb) {
      await this.lvm.extend(lv, sizeGb);
      this.resized(lv, sizeGb, true);
    }
    await this.activateLocked(lv, true);
    return this.location(lv, true);
  }

  /**
   * A new volume filled with `dd` from `from` (a snapshot). `prepare` makes `from` ready inside the queue;
   * the copy itself runs outside it so a long dd does not hold up the VG's other writes.
   */
  private async copyInto(volume: VolumeRef, from: string, sizeGb: number, prepare: () => Promise<void>): Promise<Location> {
    const lv = volumeLv(volume.id);
    let created = false;
    try {
      const location = await this.locked(async () => {
        await prepare();
        const loc = await this.createVolumeLocked(lv, volume);
        created = true;
        await this.activateLocked(lv, false);
        return loc;
      });
      await this.lvm.copy(from, lv, sizeGb, this.thin);
      return location;
    } catch (err) {
      // Leave nothing half-copied behind; the record goes to error with this failure.
      if (created) await this.locked(() => this.removeLocked(lv)).catch(() => undefined);
      throw err;
    }
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

  /** Deactivation on detach: an LV already gone is fine, and one still open elsewhere stays up. */
  private async deactivateQuietly(lv: string): Promise<void> {
    await this.locked(async () => {
      try {
        await this.lvm.deactivate(lv);
      } catch (err) {
        const stderr = stderrOf(err);
        if (!isLvNotFound(stderr) && !/in use|open/i.test(stderr)) throw err;
      }
    });
  }

  /** `lvremove -f`, retried once with cinder's settings; an LV already gone counts as removed. */
  /**
   * cinder's volume_clear: a thick LV is zeroed before removal so the next LV on its extents cannot
   * read its data; for a thick snapshot that is its copy-on-write store (`<dm name>-cow`). Thin LVs
   * need no wipe: the pool hands out zeroed blocks. An LV already gone has nothing to wipe.
   */
  private async clearAndRemoveLocked(lv: string): Promise<void> {
    const known = this.cached(lv);
    if (this.config.volumeClear === 'zero' && known && !this.lvIsThin(known)) {
      await this.activateLocked(lv, false);
      await this.lvm.zero(known.origin ? `${mapperPath(this.vg, lv)}-cow` : devicePath(this.vg, lv), known.size);
    }
    await this.removeLocked(lv);
  }

  private async removeLocked(lv: string): Promise<void> {
    try {
      await this.lvm.remove(lv);
    } catch (err) {
      if (isLvNotFound(stderrOf(err))) return this.forget(lv);
      try {
        await this.lvm.remove(lv, true);
      } catch (retryErr) {
        if (!isLvNotFound(stderrOf(retryErr))) throw retryErr;
      }
    }
    this.forget(lv);
  }

  private async tolerateMissing(step: Promise<unknown>): Promise<void> {
    await step.catch((err: unknown) => {
      const text = `${stderrOf(err)} ${err instanceof Error ? err.message : ''}`;
      if (!/No such path|does not exist|not found/i.test(text)) throw err;
    });
  }

  private isLocal(connector: ConnectorInfo): boolean {
    return connector.host === this.hostname;
  }

  // Cache upkeep: the figures follow each change arithmetically, so no lvs/vgs runs on the write path.

  private added(lv: Omit<LvInfo, 'dataPercent' | 'metadataPercent'>): void {
    if (!this.report) return;
    this.report.lvs.set(lv.name, { ...lv, dataPercent: null, metadataPercent: null });
    if (!this.lvIsThin(lv)) this.report.vg.free -= lv.size;
    this.report.vg.lvCount += 1;
  }

  private forget(lv: string): void {
    const known = this.report?.lvs.get(lv);
    if (!this.report || !known) return;
    this.report.lvs.delete(lv);
    if (!this.lvIsThin(known)) this.report.vg.free += known.size;
    this.report.vg.lvCount -= 1;
  }

  private resized(lv: string, sizeGb: number, thin: boolean): void {
    const known = this.report?.lvs.get(lv);
    if (!this.report || !known) return;
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

function tagValue(lv: LvInfo, prefix: string): string | undefined {
  return lv.tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);
}

function lvNameFor(kind: string | undefined, id: string): string | null {
  if (kind === 'volume') return volumeLv(id);
  if (kind === 'snapshot') return snapshotLv(id);
  return null;
}
