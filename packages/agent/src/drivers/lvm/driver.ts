import { access, stat } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import {
  BackendError,
  ConflictError,
  GIB,
  InvalidArgumentError,
  KindlingError,
  type Capabilities,
  type ConnectionRecord,
  type ConnectorInfo,
  type Location,
} from '@kindling/protocol';
import type { LvmBackendConfig } from '../../config.js';
import type { Runner } from '../../exec/run.js';
import type {
  Attachment,
  ContentReader,
  ContentSink,
  Driver,
  DriverStats,
  Leftover,
  Readiness,
  ScanResult,
  SnapshotRef,
  VolumeRef,
  WriteHold,
} from '../driver.js';
import { Clearer } from './clear.js';
import { holdWritesOf } from '../hold.js';
import { LvmCommands } from './commands.js';
import { LvmContent } from './content.js';
import { Copier } from './copy.js';
import { lvmStats } from './figures.js';
import { IscsiExport, defaultTargetIp } from './iscsi.js';
import { clearLv, defaultThinPool, dmName, ownerTag, parseLvName, snapshotLv, snapshotTags, volumeLv } from './names.js';
import type { Report } from './report.js';
import { Reverter } from './revert.js';
import { scanReport } from './scan.js';
import { LvSteps, lvmReason, withDetails } from './steps.js';
import { TargetCli, checkInitiator } from './targetcli.js';
import { VgCache, lvIsThin } from './vg-cache.js';

/** Warn well before the metadata area fills: LVM hangs on every command once it is full. */
const MDA_WARN_FREE_RATIO = 0.25;

export interface LvmDriverDeps {
  run: Runner;
  /** The agent's host id: with the backend's name, it says whose leftovers are whose on a shared VG. */
  hostId?: string;
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

/**
 * Kindling's LVM driver, cinder's LVMVolumeDriver: each operation a short sequence of named lvm2
 * commands inside the VG's write queue, long copies, zeroing and merges outside it. Names on storage
 * mean what recovery.md says: `volume-<id>` only once complete; every other name is a step in between.
 * Copies, zeroing and reverts have their own modules (copy.ts, clear.ts, revert.ts).
 */
export class LvmDriver implements Driver {
  readonly driver = 'lvm' as const;
  readonly name: string;
  private readonly vg: string;
  private readonly steps: LvSteps;
  private readonly cache: VgCache;
  private readonly clearer: Clearer;
  private readonly copier: Copier;
  private readonly reverter: Reverter;
  private readonly content: LvmContent;
  private readonly iscsi: IscsiExport;
  private readonly hostname: string;
  private readonly deviceExists: (path: string) => Promise<boolean>;
  /** New volumes are thin: decided at start (auto = thin when the pool exists or the VG is empty, as cinder). */
  private thin: boolean;

  constructor(
    private readonly config: LvmBackendConfig,
    deps: LvmDriverDeps,
  ) {
    this.name = config.name;
    this.vg = config.volumeGroup;
    const lvm = new LvmCommands(deps.run, this.vg, config.lvmConfFile, config.lvmShell !== false);
    this.cache = new VgCache(lvm, config.thinPool ?? defaultThinPool(config.volumeGroup), config);
    const owner = ownerTag(deps.hostId ?? osHostname(), config.name);
    this.deviceExists = deps.deviceExists ?? blockDeviceExists;
    this.steps = new LvSteps(lvm, this.cache, owner, this.deviceExists);
    this.clearer = new Clearer(this.steps, config);
    this.copier = new Copier(this.steps, this.clearer);
    this.content = new LvmContent(this.steps, this.clearer, this.copier);
    this.reverter = new Reverter({
      steps: this.steps,
      clearer: this.clearer,
      sleep: deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      minMiBps: config.volumeClearMinMiBps,
    });
    this.iscsi = new IscsiExport(new TargetCli(deps.run, deps.configfs), () => ({
      ip: config.targetIp ?? defaultTargetIp(),
      port: config.targetPort,
    }));
    this.hostname = deps.hostname ?? osHostname();
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
    const warnings = this.clearer.warnings();
    const { mdaFree, mdaSize } = report.vg;
    if (mdaSize > 0 && mdaFree < mdaSize * MDA_WARN_FREE_RATIO) {
      warnings.unshift(
        `volume group ${this.vg} metadata area is nearly full (${mdaFree} of ${mdaSize} bytes free); ` +
          'LVM stops working when it fills',
      );
    }
    return warnings.length > 0 ? { ready: true, warnings } : { ready: true };
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
    return this.cache.locked(async (w) => {
      await this.steps.createLocked(w, lv, volume.id, volume.size, this.thin);
      return this.steps.location(lv, this.thin);
    });
  }

  /** Resumable: an interrupted zeroing is found under its aside name and finished. */
  deleteVolume(volume: VolumeRef): Promise<void> {
    return this.clearer.remove(volumeLv(volume.id));
  }

  /**
   * Resumable: a retried lvextend that finds the size already reached counts as done. A failure says
   * whether storage changed (`details.storageChanged`, from the size lvm2 reports afterwards), and puts
   * back the activation it took away.
   */
  async extendVolume(volume: VolumeRef, newSize: number): Promise<Location> {
    const lv = volumeLv(volume.id);
    const thin = await this.isThin(volume.location, lv);
    return this.cache.locked(async (w) => {
      w.checkSpace(newSize - volume.size, thin);
      // An origin with COW snapshots can only be resized inactive (cinder's extend_volume).
      const inactive = !thin && this.cache.hasThickSnapshots(lv);
      if (inactive) await this.steps.lvm.deactivate(lv).catch((err: unknown) => Promise.reject(withDetails(err, { storageChanged: false })));
      try {
        await this.steps.extendLocked(w, lv, newSize, thin);
      } catch (err) {
        if (inactive) await this.steps.activateLocked(lv, false).catch(() => undefined);
        const now = await this.steps.lookup(lv).catch(() => null);
        throw withDetails(err, { storageChanged: now?.size !== volume.size * GIB });
      }
      if (inactive) await this.steps.activateLocked(lv, false).catch((err: unknown) => Promise.reject(withDetails(err, { storageChanged: true })));
      return this.steps.location(lv, thin);
    });
  }

  // ---- snapshots ----

  async createSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ snapshot: Location; volume: Location }> {
    const lv = snapshotLv(snapshot.id);
    const origin = volumeLv(volume.id);
    const thin = await this.isThin(volume.location, origin);
    return this.cache.locked(async (w) => {
      await this.steps.snapshotLocked(w, lv, origin, snapshotTags(snapshot.id, volume.id), thin, volume.size);
      return { snapshot: this.steps.location(lv, thin), volume: volume.location };
    });
  }

  /** The copy-on-write store holds the volume's old blocks: zeroed as the rule says (cinder zeroes it too). */
  async deleteSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ volume: Location }> {
    await this.clearer.remove(snapshotLv(snapshot.id));
    return { volume: volume.location };
  }

  async createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef, source: VolumeRef): Promise<Location> {
    const snap = snapshotLv(snapshot.id);
    if (await this.isThin(source.location, volumeLv(source.id))) return this.copier.thin(volume, snap, snapshot.volumeSize);
    return this.copier.into(volume, snap, snapshot.volumeSize, this.thin, async () => {
      await this.steps.activateLocked(snap, false);
    });
  }

  async cloneVolume(volume: VolumeRef, source: VolumeRef): Promise<Location> {
    const src = volumeLv(source.id);
    if (await this.isThin(source.location, src)) return this.copier.thin(volume, src, source.size);
    return this.copier.thickClone(volume, source, this.thin);
  }

  /** Resumable from any step: see recovery.md. A failure says `storageChanged` and `snapshotPresent`. */
  async revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<Location> {
    return this.reverter.revert(volume, snapshot, await this.isThin(volume.location, volumeLv(volume.id)));
  }

  // ---- copies to and from other agents (content.ts) ----

  async readVolume<T>(volume: VolumeRef, use: (reader: ContentReader) => Promise<T>): Promise<T> {
    return this.content.readVolume(volume, await this.isThin(volume.location, volumeLv(volume.id)), use);
  }

  readSnapshot<T>(snapshot: SnapshotRef, _volume: VolumeRef, use: (reader: ContentReader) => Promise<T>): Promise<T> {
    return this.content.readSnapshot(snapshot, use);
  }

  writeVolume(volume: VolumeRef, _sizeBytes: number, fill: (sink: ContentSink) => Promise<void>): Promise<Location> {
    return this.content.writeVolume(volume, this.thin, fill);
  }

  // ---- attachments ----

  async attach(volume: VolumeRef): Promise<Attachment> {
    const lv = volumeLv(volume.id);
    const path = await this.cache.locked(() => this.steps.activateLocked(lv, false));
    return { path, connectionInfo: { driverVolumeType: 'local', data: { device_path: path } } };
  }

  async detach(volume: VolumeRef, _connection: ConnectionRecord): Promise<void> {
    await this.steps.deactivateQuietly(volumeLv(volume.id));
  }

  /**
   * Suspends the members' active devices (an inactive LV has no writer on this host); lvm2 takes each
   * snapshot of a held origin and resumes it (hold.ts). Thick only: lvm2 2.03 snapshotting a thin
   * volume someone else suspended fails halfway, with the pool's transaction id in its metadata ahead
   * of the kernel's, and every later thin command of the pool fails (seen in the kernel lane).
   */
  async holdWrites(volumes: VolumeRef[], limitMs: number): Promise<WriteHold> {
    if (this.thin) {
      throw new ConflictError(`backend ${this.name} cannot hold writes to thin volumes in use for a group snapshot (lvm2 cannot snapshot a suspended thin volume); detach them first`, {
        backend: this.name,
      });
    }
    const devices: string[] = [];
    for (const volume of volumes) {
      const name = dmName(this.vg, volumeLv(volume.id));
      if (await this.deviceExists(`/dev/mapper/${name}`)) devices.push(name);
    }
    if (devices.length === 0) return { expired: false, release: async () => undefined };
    return holdWritesOf('device-mapper', devices, limitMs);
  }

  validateConnector(connector: ConnectorInfo): void {
    if (this.isLocal(connector)) return;
    checkInitiator(connector.initiator);
  }

  async connect(volume: VolumeRef, connector: ConnectorInfo, others: ConnectionRecord[]): Promise<Attachment> {
    if (this.isLocal(connector)) return this.attach(volume);
    const lv = volumeLv(volume.id);
    const activate = (): Promise<string> => this.cache.locked(() => this.steps.activateLocked(lv, false));
    const info = await this.iscsi.connect(volume.id, lv, checkInitiator(connector.initiator), others, activate);
    return { path: null, connectionInfo: info };
  }

  async disconnect(volume: VolumeRef, connection: ConnectionRecord, others: ConnectionRecord[]): Promise<void> {
    const lv = volumeLv(volume.id);
    if (connection.connectionInfo.driverVolumeType === 'iscsi') {
      await this.iscsi.disconnect(lv, checkInitiator(connection.connectorInfo.initiator), others);
    }
    if (others.length === 0) await this.steps.deactivateQuietly(lv);
  }

  async connectionSize(volume: VolumeRef, _connection: ConnectionRecord): Promise<number> {
    const lv = volumeLv(volume.id);
    const found = this.cache.lv(lv) ?? (await this.steps.lookup(lv));
    if (!found) throw new BackendError(`logical volume ${this.vg}/${lv} not found`);
    return found.size;
  }

  // ---- what storage holds ----

  async scan(signal?: AbortSignal): Promise<ScanResult> {
    signal?.throwIfAborted();
    const report = await this.refresh();
    signal?.throwIfAborted();
    return scanReport(report, this.steps.owner);
  }

  // One page: lvm2 reports every LV of the VG in one command's output anyway.
  async *scanPages(signal?: AbortSignal): AsyncGenerator<ScanResult> {
    yield await this.scan(signal);
  }

  /**
   * Finishes or takes away one leftover of this backend's own (recovery.md): zeroed first as the rule
   * says (a `pending-clear` one always: it exists only because zeroing was due); a thin revert's new
   * LV whose old volume is already gone is the reverted volume, so it is renamed into place, never
   * removed. Another backend's (its owner tag) is refused.
   */
  async removeLeftover(leftover: Leftover): Promise<void> {
    const lv = leftover.where.startsWith(`${this.vg}/`) ? leftover.where.slice(this.vg.length + 1) : '';
    const role = parseLvName(lv)?.role;
    const info = role && !['volume', 'snapshot'].includes(role) ? await this.steps.lookup(lv) : undefined;
    if (info === undefined || (info && !info.tags.includes(this.steps.owner))) {
      throw new InvalidArgumentError(`not a leftover of this backend: ${leftover.where}`, { where: leftover.where });
    }
    if (info) {
      if (role === 'revert') await this.reverter.settleLeftover(leftover.id);
      else await this.clearer.discard(lv, role?.startsWith('clear-'));
    }
    this.clearer.settled(leftover.where);
  }

  close(): void {
    this.steps.lvm.shell?.close();
  }

  private refresh(): Promise<Report> {
    return this.cache.locked((w) => w.refresh());
  }

  /**
   * Whether a volume is thin (which path a copy, snapshot or revert takes), from its record; a record
   * from before `thin` was kept asks lvm2. Zeroing never asks this: clear.ts reads the LV itself.
   */
  private async isThin(location: Location, lv: string): Promise<boolean> {
    if (typeof location.thin === 'boolean') return location.thin;
    const found = (await this.steps.lookup(lv)) ?? (await this.steps.lookup(clearLv(lv)));
    return found ? lvIsThin(found) : this.thin;
  }

  private isLocal(connector: ConnectorInfo): boolean {
    return connector.host === this.hostname;
  }
}
