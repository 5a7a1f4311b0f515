import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BackendError,
  ConflictError,
  GIB,
  InvalidArgumentError,
  KindlingError,
  NotFoundError,
  UnsupportedError,
  type Capabilities,
  type ConnectionInfo,
  type Location,
} from '@kindling/protocol';
import type { NfsBackendConfig } from '../../config.js';
import type { Runner } from '../../exec/run.js';
import { checkToolOnce } from '../../exec/tool-check.js';
import {
  collectScan,
  type Attachment,
  type ContentReader,
  type ContentSink,
  type Driver,
  type DriverStats,
  type Leftover,
  type Readiness,
  type ScanResult,
  type SnapshotRef,
  type VolumeRef,
  type WriteHold,
} from '../driver.js';
import { Capacity, toGb } from './capacity.js';
import * as chain from './chain.js';
import { EmptyImages } from './empty-image.js';
import type { Chain, HeldImage, Image } from './chain.js';
import { fault } from './faults.js';
import { readHeld, writePart } from './content.js';
import { removeLeftover } from './leftovers.js';
import { infoFile, ownerTag, partFile, tempSnapshotId, volumeFile } from './names.js';
import { Provisioned, type Counted } from './provisioned.js';
import * as qemuImg from './qemu-img.js';
import type { ImageFormat } from './qemu-img.js';
import { publishNew, withNewFile, type NewFile } from './safe-file.js';
import { scanShare, type ShareScan } from './scan.js';
import { filesystemsOn, resizeServed, servedBy, type Served } from './served.js';
import { holdWritesOf } from '../hold.js';
import { isMounted, isRemoteShare, mountShare, prepareLocalShare, probeWritable } from './shares.js';

export interface NfsDriverDeps {
  run: Runner;
  /** The agent's host id: with the backend's name, it tags every temporary name this driver makes. */
  hostId: string;
  /** Where mounts are listed; tests point it at a file of their own. */
  mountInfoPath?: string;
  /** The agent's data folder, where the start check of qemu-img remembers the program it passed with. */
  dataDir?: string;
}

/** Where a volume lives: its share and its chain (which knows the share's folder on this host). */
interface Placement {
  share: string;
  chain: Chain;
}

/** How long a live snapshot may keep a mounted filesystem frozen: its switch takes milliseconds. */
const FREEZE_LIMIT_MS = 30_000;

const exists = (path: string): Promise<boolean> => lstat(path).then(() => true, () => false);

/** Each volume's virtual size by share, from a read of storage: the provisioned count's input. */
const provisionedSizes = (found: ShareScan): Counted =>
  found.volumes.map((v) => [v.id, { share: v.share, bytes: v.virtualSize }]);
/**
 * cinder's NFS driver (nfs.py over remotefs.py): volumes are files `volume-<id>` on a share, raw
 * (sparse or allocated) or qcow2; snapshots are qcow2 overlays recorded in `volume-<id>.info`.
 *
 * Volume location: `{ share, format, activeFile }` (format of the base file; the file reads and
 * writes go to). Snapshot location: `{ share, file }` (the overlay made when it was taken).
 * The `.info` record on the share, not the location, is what chain operations trust.
 *
 * No lock of its own: the service holds the lock of every volume whose files a call reads or
 * changes (the source's, for clones and volumes from snapshots), and a new volume's id is its own.
 * Each operation's steps and what a crash at each leaves are in recovery.md.
 */
export class NfsDriver implements Driver {
  readonly driver = 'nfs' as const;
  readonly name: string;
  private readonly run: Runner;
  private readonly mountInfoPath: string;
  private readonly capacity: Capacity;
  private readonly owner: string;
  private readonly empty: EmptyImages;
  private readonly toolMemo: string | undefined;
  /** Volumes whose filesystems a group snapshot's hold froze (holdWrites), until its release. */
  private readonly frozen = new Set<string>();

  constructor(
    private readonly config: NfsBackendConfig,
    deps: NfsDriverDeps,
  ) {
    this.name = config.name;
    this.run = deps.run;
    this.empty = new EmptyImages(deps.run);
    this.owner = ownerTag(deps.hostId, config.name);
    this.mountInfoPath = deps.mountInfoPath ?? '/proc/self/mountinfo';
    this.toolMemo = deps.dataDir && join(deps.dataDir, 'qemu-img.checked');
    const provisioned = new Provisioned(async () => {
      const counted: Counted = [];
      for await (const page of this.scanShares()) counted.push(...provisionedSizes(page));
      return counted;
    });
    this.capacity = new Capacity(config, this.mountInfoPath, provisioned);
  }

  private dirOf(share: string): string {
    return this.capacity.dirOf(share);
  }

  async start(): Promise<void> {
    // A missing qemu-utils would otherwise surface only at the first volume.
    const check = ['qemu-img', '--version'] as const;
    await (this.toolMemo ? checkToolOnce(this.run, check, this.toolMemo) : this.run(check));
    for (const share of this.config.shares) {
      if (isRemoteShare(share)) {
        await mountShare(this.run, share, this.dirOf(share), this.config.mountOptions, this.mountInfoPath);
      } else {
        await prepareLocalShare(share);
      }
    }
    // Not counted here: a read of every file before serving took 58 s at 100,000 volumes. The first
    // scan (the check after ready) counts it, or the first figure asked for; operations keep it up to date.
  }

  async readiness(): Promise<Readiness> {
    const problems: string[] = [];
    for (const share of this.config.shares) {
      const dir = this.dirOf(share);
      if (isRemoteShare(share) && !(await isMounted(dir, this.mountInfoPath))) {
        problems.push(`share ${share} is not mounted at ${dir}`);
        continue;
      }
      try {
        await probeWritable(dir, this.owner);
      } catch (err) {
        problems.push(`share ${share} is not writable: ${(err as Error).message}`);
      }
    }
    return problems.length > 0 ? { ready: false, reason: problems.join('; ') } : { ready: true };
  }

  capabilities(): Capabilities {
    const snapshots = this.config.snapshotSupport;
    return {
      snapshot: snapshots,
      // A new overlay becomes the active file, but a connected host keeps writing to the old one.
      snapshotInUse: false,
      clone: true,
      createFromSnapshot: snapshots,
      revertToSnapshot: snapshots,
      extend: true,
      extendWithSnapshots: snapshots,
      extendInUseWithSnapshots: snapshots,
      attach: true,
      connect: true,
      thin: this.capacity.thin,
      protocols: ['nfs'],
    };
  }

  async stats(refresh: boolean): Promise<DriverStats> {
    const figures = await this.capacity.figures(refresh);
    return {
      vendorName: 'Open Source',
      driverVersion: '1.0',
      storageProtocol: 'nfs',
      totalCapacityGb: toGb(figures.totalBytes),
      freeCapacityGb: toGb(figures.freeBytes),
      provisionedCapacityGb: toGb(figures.provisionedBytes),
      thinProvisioningSupport: this.capacity.thin,
      thickProvisioningSupport: !this.capacity.thin,
      maxOverSubscriptionRatio: this.config.maxOverSubscriptionRatio,
      reservedPercentage: this.config.reservedPercentage,
      maxVolumeSizeGb: figures.maxVolumeSizeGb,
    };
  }

  async createVolume(volume: VolumeRef): Promise<Location> {
    const share = await this.capacity.chooseShare(volume.size);
    return this.build(volume, share, (part) => this.createEmpty(part, volume.size));
  }

  /** Idempotent; removes every file of the volume, its record first and its base file last (recovery.md). */
  async deleteVolume(volume: VolumeRef): Promise<void> {
    const { share } = volume.location;
    const usable = await this.capacity.usableShares();
    if (typeof share === 'string' && this.config.shares.includes(share) && !usable.includes(share)) {
      throw new BackendError(`share ${share} of volume ${volume.id} is not mounted`, { share, volumeId: volume.id });
    }
    const shares = typeof share === 'string' && usable.includes(share) ? [share] : usable;
    for (const candidate of shares) {
      const dir = this.dirOf(candidate);
      const c: Chain = { run: this.run, dir, volumeId: volume.id, baseFormat: this.config.format, owner: this.owner };
      // The record first (a crash after it leaves a volume without snapshots), the base last (its
      // presence means "a volume" to the scan). This agent's temporary names are the scan's to sweep.
      for (const name of await chain.filesToDelete(c, volume.location.activeFile)) {
        await rm(join(dir, name), { force: true });
        if (name === infoFile(volume.id)) await fault('volume-delete:record-removed');
      }
    }
    this.capacity.provisioned.delete(volume.id);
  }

  async extendVolume(volume: VolumeRef, newSize: number): Promise<Location> {
    if (newSize < volume.size) {
      throw new InvalidArgumentError(`cannot shrink volume ${volume.id} from ${volume.size} to ${newSize} GiB`, {
        size: volume.size,
        newSize,
      });
    }
    const placement = await this.need(volume);
    // An image the CSI node serves while attached is grown by its daemon, which holds its lock (served.ts).
    const served = await servedBy(placement.chain.dir, volume.id);
    if (served) await chain.settleServed(placement.chain, served, (await chain.readRecord(placement.chain)) ?? { active: volumeFile(volume.id) });
    return chain.withActive(placement.chain, async ([active]) => {
      await this.capacity.checkRoom(placement.share, newSize - volume.size);
      // An overlay can grow past its backing file: reads beyond the backing file's end are zeros.
      if (served) await resizeServed(served, newSize * GIB);
      else await qemuImg.resize(this.run, active!.alone, newSize, active!.format === 'raw' && !this.config.sparse);
      this.capacity.provisioned.set(volume.id, placement.share, newSize * GIB);
      return this.location(placement, active!.file);
    });
  }

  readonly snapshotsWhenServed = true;

  async createSnapshot(snapshot: SnapshotRef, volume: VolumeRef, inUse = false): Promise<{ snapshot: Location; volume: Location }> {
    this.requireSnapshots();
    const placement = await this.need(volume);
    const live = inUse ? await this.live(placement, volume) : null;
    const overlay = await chain.createSnapshot(placement.chain, snapshot.id, live);
    return { snapshot: { share: placement.share, file: overlay }, volume: this.location(placement, overlay) };
  }

  /**
   * A volume in use keeps being written: only a daemon serving it on this host can switch its writes to
   * a new overlay. Its mounted filesystem is frozen for the switch (flushed, so the snapshot is clean,
   * not only crash-consistent), unless a group snapshot's hold froze it already.
   */
  private async live(placement: Placement, volume: VolumeRef): Promise<chain.Live> {
    const served = await this.servedInUse(placement, volume, 'snapshot');
    const hold = async (): Promise<() => Promise<void>> => {
      const mounts = this.frozen.has(volume.id) ? [] : await filesystemsOn(served);
      if (mounts.length === 0) return async () => undefined;
      const held = await holdWritesOf('filesystem', mounts, FREEZE_LIMIT_MS);
      return () => held.release();
    };
    return { served, hold };
  }

  private async servedInUse(placement: Placement, volume: VolumeRef, action: string): Promise<Served> {
    const served = await servedBy(placement.chain.dir, volume.id);
    if (served) return served;
    throw new ConflictError(
      `backend ${this.name} can ${action} volume ${volume.id} while it is in use only when qemu-storage-daemon serves it on this host (the CSI node stages it so); detach it first`,
      { id: volume.id, status: 'in-use', feature: 'snapshotInUse' },
    );
  }

  /**
   * A group snapshot's hold: the members' mounted filesystems frozen at once, until release (each
   * member's live snapshot then switches without freezing again). A member staged as a block device
   * has no filesystem to freeze, and its writes no other hold: refused, as is one not served here.
   */
  async holdWrites(volumes: VolumeRef[], limitMs: number): Promise<WriteHold> {
    const mounts: string[] = [];
    for (const volume of volumes) {
      const served = await this.servedInUse(await this.need(volume), volume, 'hold the writes of');
      const found = await filesystemsOn(served);
      if (found.length === 0) {
        throw new ConflictError(`backend ${this.name} cannot hold the writes of volume ${volume.id}: it is in use as a block device, with no filesystem to freeze; detach it first`, {
          id: volume.id,
        });
      }
      mounts.push(...found);
    }
    const held = await holdWritesOf('filesystem', mounts, limitMs);
    for (const volume of volumes) this.frozen.add(volume.id);
    return {
      get expired() {
        return held.expired;
      },
      release: async () => {
        for (const volume of volumes) this.frozen.delete(volume.id);
        await held.release();
      },
    };
  }

  // Not refused when snapshots are disabled: snapshots made before the config changed must stay removable.
  // In use, the daemon serving the volume commits the overlay (chain.ts, served.ts).
  async deleteSnapshot(snapshot: SnapshotRef, volume: VolumeRef, inUse = false): Promise<{ volume: Location }> {
    const placement = await this.locate(volume);
    if (!placement) return { volume: volume.location };
    const served = inUse ? await this.servedInUse(placement, volume, 'delete a snapshot of') : null;
    await chain.deleteSnapshot(placement.chain, snapshot.id, served);
    return { volume: await this.activeLocation(placement) };
  }

  async createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef, source: VolumeRef): Promise<Location> {
    this.requireSnapshots();
    const src = await this.need(source);
    return chain.withSnapshotImage(src.chain, snapshot.id, async (image) => {
      this.checkFits(volume, image);
      const share = await this.capacity.chooseShare(volume.size);
      return this.build(volume, share, (part) => this.copy(image, part, volume.size));
    });
  }

  /**
   * cinder's _create_cloned_volume: the clone is copied from a temporary snapshot of the source,
   * which is deleted again before the clone is published, and lives on the source's share. Without
   * snapshot support the source's file is copied directly (it can have no overlays).
   */
  async cloneVolume(volume: VolumeRef, source: VolumeRef): Promise<Location> {
    const src = await this.need(source);
    const [active] = await chain.activeChain(src.chain);
    this.checkFits(volume, active!);
    await this.capacity.checkRoom(src.share, volume.size);
    if (!this.config.snapshotSupport) {
      return this.build(volume, src.share, (part) => chain.withActive(src.chain, ([image]) => this.copy(image!, part, volume.size)));
    }
    const tempId = tempSnapshotId(volume.id, this.owner);
    return this.build(volume, src.share, async (part) => {
      await chain.createSnapshot(src.chain, tempId);
      try {
        await chain.withSnapshotImage(src.chain, tempId, (image) => this.copy(image, part, volume.size));
      } catch (err) {
        await chain.deleteSnapshot(src.chain, tempId).catch((cleanup: unknown) => {
          throw new BackendError(
            `${(err as Error).message}; removing the temporary snapshot ${tempId} also failed: ${(cleanup as Error).message}`,
            err instanceof KindlingError ? err.details : {},
          );
        });
        throw err;
      }
      await chain.deleteSnapshot(src.chain, tempId);
    });
  }

  // Copies to and from other agents (content.ts): the service holds the volume's lock while they run.
  async readVolume<T>(volume: VolumeRef, use: (reader: ContentReader) => Promise<T>): Promise<T> {
    return chain.withActive((await this.need(volume)).chain, ([active]) => readHeld(this.run, active!, use));
  }

  async readSnapshot<T>(snapshot: SnapshotRef, volume: VolumeRef, use: (reader: ContentReader) => Promise<T>): Promise<T> {
    this.requireSnapshots();
    return chain.withSnapshotImage((await this.need(volume)).chain, snapshot.id, (image) => readHeld(this.run, image, use));
  }

  async writeVolume(volume: VolumeRef, sizeBytes: number, fill: (sink: ContentSink) => Promise<void>): Promise<Location> {
    const share = await this.capacity.chooseShare(volume.size);
    const target = { run: this.run, volumeId: volume.id, owner: this.owner, sizeGb: volume.size, sizeBytes, format: this.config.format };
    return this.build(volume, share, (part) => writePart(part, { ...target, createEmpty: (p) => this.createEmpty(p, volume.size) }, fill));
  }

  async revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<Location> {
    this.requireSnapshots();
    const placement = await this.need(volume);
    await chain.revertToSnapshot(placement.chain, snapshot.id);
    return this.activeLocation(placement);
  }

  async attach(volume: VolumeRef): Promise<Attachment> {
    const placement = await this.need(volume);
    const [active] = await chain.activeChain(placement.chain);
    return { path: active!.path, connectionInfo: this.connectionInfo(placement, active!, active!.path) };
  }

  // A file needs nothing undone on this host.
  async detach(): Promise<void> {}

  // NFS needs nothing from the connecting host: it mounts the export itself.
  validateConnector(): void {}

  async connect(volume: VolumeRef): Promise<Attachment> {
    const placement = await this.need(volume);
    const [active] = await chain.activeChain(placement.chain);
    return { path: null, connectionInfo: this.connectionInfo(placement, active!) };
  }

  // The export is the share itself, shared by every volume on it: nothing to take down per volume.
  async disconnect(): Promise<void> {}

  async connectionSize(volume: VolumeRef): Promise<number> {
    const [active] = await chain.activeChain((await this.need(volume)).chain);
    return active!.virtualSize;
  }

  scan(signal?: AbortSignal): Promise<ScanResult> {
    return collectScan(this.scanPages(signal));
  }

  async *scanPages(signal?: AbortSignal): AsyncGenerator<ScanResult> {
    // The read counts the provisioned bytes too (Provisioned.adopt), as the pages pass.
    let counted!: (sizes: Counted) => void;
    let failed!: (err: unknown) => void;
    this.capacity.provisioned.adopt(new Promise<Counted>((resolve, reject) => ((counted = resolve), (failed = reject))));
    const sizes: Counted = [];
    try {
      for await (const found of this.scanShares(signal)) {
        sizes.push(...provisionedSizes(found));
        yield {
          volumes: found.volumes.map((f) => ({ id: f.id, size: Math.ceil(f.virtualSize / GIB), location: f.location })),
          snapshots: found.volumes.flatMap((f) =>
            f.snapshots.map((s) => ({ id: s.id, volumeId: f.id, location: { share: f.share, file: s.file } })),
          ),
          leftovers: found.leftovers,
          strays: found.strays,
        };
      }
      counted(sizes);
    } finally {
      // Failed, aborted or left before the end (a no-op after `counted`): not a count.
      failed(new Error(`the read of ${this.name}'s storage ended before it was done`));
    }
  }

  async removeLeftover(leftover: Leftover): Promise<void> {
    await removeLeftover(
      leftover,
      this.config.shares.map((s) => this.dirOf(s)),
      (dir, volumeId) => ({ run: this.run, dir, volumeId, baseFormat: this.config.format, owner: this.owner }),
    );
  }

  private requireSnapshots(): void {
    if (!this.config.snapshotSupport) {
      throw new UnsupportedError(`backend ${this.name} has snapshots disabled (snapshotSupport: false)`, {
        feature: 'snapshot',
      });
    }
  }

  private connectionInfo(placement: Placement, active: Image, path?: string): ConnectionInfo {
    return {
      driverVolumeType: 'nfs',
      data: {
        export: placement.share,
        name: active.file,
        options: this.config.mountOptions ?? null,
        format: active.format,
        ...(path !== undefined ? { path } : {}),
      },
    };
  }

  private location(placement: Placement, activeFile: string): Location {
    return { share: placement.share, format: placement.chain.baseFormat, activeFile };
  }

  private async activeLocation(placement: Placement): Promise<Location> {
    const info = await chain.readRecord(placement.chain);
    return this.location(placement, info?.active ?? volumeFile(placement.chain.volumeId));
  }

  /**
   * The volume's share: the one its location names, else (a record without one, as after a failed
   * create) whichever share holds its files. Null when no share does.
   */
  private async locate(volume: VolumeRef): Promise<Placement | null> {
    const { share, format } = volume.location;
    const baseFormat: ImageFormat = format === 'raw' || format === 'qcow2' ? format : this.config.format;
    const candidates = typeof share === 'string' && this.config.shares.includes(share) ? [share] : this.config.shares;
    for (const candidate of candidates) {
      const dir = this.dirOf(candidate);
      const present = await Promise.all([volumeFile(volume.id), infoFile(volume.id)].map((f) => exists(join(dir, f))));
      if (present.includes(true)) {
        return { share: candidate, chain: { run: this.run, dir, volumeId: volume.id, baseFormat, owner: this.owner } };
      }
    }
    return null;
  }

  private async need(volume: VolumeRef): Promise<Placement> {
    const placement = await this.locate(volume);
    if (!placement) {
      throw new NotFoundError(`volume ${volume.id} is not on any share of backend ${this.name}`, {
        volumeId: volume.id,
      });
    }
    return placement;
  }

  private checkFits(volume: VolumeRef, image: Image): void {
    if (volume.size * GIB < image.virtualSize) {
      throw new InvalidArgumentError(`a ${volume.size} GiB volume cannot hold a ${toGb(image.virtualSize)} GiB image`, {
        size: volume.size,
        sourceGb: toGb(image.virtualSize),
      });
    }
  }

  /**
   * Makes a new volume under its temporary name `volume-<id>.part-<owner>-<random>` (made by the agent,
   * `fill` writes it through its descriptor), flushes it and only then publishes it as `volume-<id>`:
   * that name on a share means a complete volume.
   */
  private async build(volume: VolumeRef, share: string, fill: (part: NewFile) => Promise<void>): Promise<Location> {
    const dir = this.dirOf(share);
    const file = volumeFile(volume.id);
    if (await exists(join(dir, file))) throw new ConflictError(`${join(dir, file)} already exists on share ${share}`, { path: join(dir, file) });
    await withNewFile(dir, partFile(volume.id, this.owner), async (part) => {
      try {
        await fill(part);
        await publishNew(part, file);
      } catch (err) {
        await rm(part.path, { force: true });
        throw err;
      }
    });
    this.capacity.provisioned.set(volume.id, share, volume.size * GIB);
    return { share, format: this.config.format, activeFile: file };
  }

  /** Writes an empty volume of `sizeGb` in the backend's format into a file the agent made. */
  private async createEmpty(target: NewFile, sizeGb: number): Promise<void> {
    await this.empty.write(target, this.config.format, sizeGb, this.config.sparse);
  }

  /** Copies a checked image (flattening its chain) into a new volume of `sizeGb` in the backend's format. */
  private async copy(image: HeldImage, target: NewFile, sizeGb: number): Promise<void> {
    await this.createEmpty(target, sizeGb);
    const format = this.config.format;
    await qemuImg.convert(this.run, image.chain, { path: target.arg, format }, format === 'raw' && !this.config.sparse, image.virtualSize);
  }

  /** Each share's scan, a page at a time. */
  private async *scanShares(signal?: AbortSignal): AsyncGenerator<ShareScan> {
    for (const share of await this.capacity.usableShares()) {
      yield* scanShare(this.run, share, this.dirOf(share), this.config.format, this.owner, signal);
    }
  }
}
