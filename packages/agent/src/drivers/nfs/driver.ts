import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BackendError,
  ConflictError,
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
import type { Attachment, Driver, DriverStats, Readiness, ScanResult, SnapshotRef, VolumeRef } from '../driver.js';
import * as chain from './chain.js';
import type { Chain, Image } from './chain.js';
import { readInfo } from './info-file.js';
import { infoFile, isTempSnapshotId, tempSnapshotId, volumeFile, volumeIdOfFile } from './names.js';
import { sizeOf } from './image-size.js';
import { Provisioned } from './provisioned.js';
import * as qemuImg from './qemu-img.js';
import type { ImageFormat } from './qemu-img.js';
import { createAllocated, createSparse } from './raw-file.js';
import {
  isMounted,
  isRemoteShare,
  mountShare,
  prepareLocalShare,
  probeWritable,
  shareDir,
  shareSpace,
  usableBytes,
} from './shares.js';
import { VolumeLock } from './volume-lock.js';

const GiB = 1024 ** 3;
const toGb = (bytes: number): number => Math.round((bytes / GiB) * 100) / 100;

export interface NfsDriverDeps {
  run: Runner;
  /** Where mounts are listed; tests point it at a file of their own. */
  mountInfoPath?: string;
}

/** Where a volume lives: its share and its chain (which knows the share's folder on this host). */
interface Placement {
  share: string;
  chain: Chain;
}

/** What storage holds for one volume, as scan() and the provisioned cache need it. */
interface Found {
  share: string;
  id: string;
  virtualSize: number;
  location: Location;
  snapshots: { id: string; file: string }[];
}

/**
 * cinder's NFS driver (nfs.py over remotefs.py): volumes are files `volume-<id>` on a share, raw
 * (sparse or allocated) or qcow2; snapshots are qcow2 overlays recorded in `volume-<id>.info`.
 *
 * Volume location: `{ share, format, activeFile }` (format of the base file; the file reads and
 * writes go to). Snapshot location: `{ share, file }` (the overlay made when it was taken).
 * The `.info` record on the share, not the location, is what chain operations trust.
 */
export class NfsDriver implements Driver {
  readonly driver = 'nfs' as const;
  readonly name: string;
  private readonly run: Runner;
  private readonly mountInfoPath: string;
  private readonly locks = new VolumeLock();
  private provisioned: Provisioned | null = null;

  constructor(
    private readonly config: NfsBackendConfig,
    deps: NfsDriverDeps,
  ) {
    this.name = config.name;
    this.run = deps.run;
    this.mountInfoPath = deps.mountInfoPath ?? '/proc/self/mountinfo';
  }

  private get thin(): boolean {
    return this.config.sparse || this.config.format === 'qcow2';
  }

  private dirOf(share: string): string {
    return shareDir(this.config.mountPointBase, share);
  }

  async start(): Promise<void> {
    // A missing qemu-utils would otherwise surface only at the first volume.
    await this.run(['qemu-img', '--version']);
    for (const share of this.config.shares) {
      if (isRemoteShare(share)) {
        await mountShare(this.run, share, this.dirOf(share), this.config.mountOptions, this.mountInfoPath);
      } else {
        await prepareLocalShare(share);
      }
    }
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
        await probeWritable(dir);
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
      thin: this.thin,
      protocols: ['nfs'],
    };
  }

  async stats(refresh: boolean): Promise<DriverStats> {
    const provisioned = await this.loadProvisioned(refresh);
    let total = 0;
    let free = 0;
    for (const share of await this.usableShares()) {
      const space = await shareSpace(this.dirOf(share));
      total += space.totalBytes;
      free += space.freeBytes;
    }
    return {
      vendorName: 'Open Source',
      driverVersion: '1.0',
      storageProtocol: 'nfs',
      totalCapacityGb: toGb(total),
      freeCapacityGb: toGb(free),
      provisionedCapacityGb: toGb(provisioned.bytes()),
      thinProvisioningSupport: this.thin,
      thickProvisioningSupport: !this.thin,
      maxOverSubscriptionRatio: this.config.maxOverSubscriptionRatio,
      reservedPercentage: this.config.reservedPercentage,
    };
  }

  async createVolume(volume: VolumeRef): Promise<Location> {
    return this.locks.with(volume.id, async () => {
      const share = await this.chooseShare(volume.size);
      const file = volumeFile(volume.id);
      const path = join(this.dirOf(share), file);
      await this.refuseExisting(path, share);
      try {
        if (this.config.format === 'qcow2') await qemuImg.create(this.run, path, 'qcow2', { size: `${volume.size}G` });
        else if (this.config.sparse) await createSparse(this.run, path, volume.size);
        else await createAllocated(this.run, path, volume.size);
      } catch (err) {
        await rm(path, { force: true });
        throw err;
      }
      (await this.loadProvisioned()).set(volume.id, share, volume.size * GiB);
      return { share, format: this.config.format, activeFile: file };
    });
  }

  async deleteVolume(volume: VolumeRef): Promise<void> {
    await this.locks.with(volume.id, async () => {
      const placement = await this.locate(volume);
      if (placement) {
        const { dir } = placement.chain;
        const base = volumeFile(volume.id);
        // Overlays and the record first, the base file last: a retry after a crash still finds the volume.
        for (const name of (await readdir(dir)).filter((n) => n.startsWith(`${base}.`))) {
          await rm(join(dir, name), { force: true });
        }
        await rm(join(dir, base), { force: true });
      }
      this.provisioned?.delete(volume.id);
    });
  }

  async extendVolume(volume: VolumeRef, newSize: number): Promise<Location> {
    if (newSize < volume.size) {
      throw new InvalidArgumentError(`cannot shrink volume ${volume.id} from ${volume.size} to ${newSize} GiB`, {
        size: volume.size,
        newSize,
      });
    }
    return this.locks.with(volume.id, async () => {
      const placement = await this.need(volume);
      await this.checkRoom(placement.share, newSize - volume.size);
      const active = await chain.activeImage(placement.chain);
      // An overlay can grow past its backing file: reads beyond the backing file's end are zeros.
      await qemuImg.resize(this.run, active.path, active.format, newSize, active.format === 'raw' && !this.config.sparse);
      (await this.loadProvisioned()).set(volume.id, placement.share, newSize * GiB);
      return this.location(placement, active.file);
    });
  }

  async createSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ snapshot: Location; volume: Location }> {
    this.requireSnapshots();
    return this.locks.with(volume.id, async () => {
      const placement = await this.need(volume);
      const overlay = await chain.createSnapshot(placement.chain, snapshot.id);
      return { snapshot: { share: placement.share, file: overlay }, volume: this.location(placement, overlay) };
    });
  }

  // Not refused when snapshots are disabled: snapshots made before the config changed must stay removable.
  async deleteSnapshot(snapshot: SnapshotRef, volume: VolumeRef): Promise<{ volume: Location }> {
    return this.locks.with(volume.id, async () => {
      const placement = await this.locate(volume);
      if (!placement) return { volume: volume.location };
      await chain.deleteSnapshot(placement.chain, snapshot.id);
      const active = await chain.activeImage(placement.chain);
      return { volume: this.location(placement, active.file) };
    });
  }

  async createVolumeFromSnapshot(volume: VolumeRef, snapshot: SnapshotRef, source: VolumeRef): Promise<Location> {
    this.requireSnapshots();
    return this.locks.with(source.id, async () => {
      const src = await this.need(source);
      const image = await chain.snapshotImage(src.chain, snapshot.id);
      return this.copyInto(volume, image, await this.chooseShare(volume.size));
    });
  }

  /**
   * cinder's _create_cloned_volume: the clone is copied from a temporary snapshot of the source,
   * which is deleted again, and lives on the source's share. Without snapshot support the source's
   * file is copied directly (it can have no overlays).
   */
  async cloneVolume(volume: VolumeRef, source: VolumeRef): Promise<Location> {
    return this.locks.with(source.id, async () => {
      const src = await this.need(source);
      await this.checkRoom(src.share, volume.size);
      if (!this.config.snapshotSupport) return this.copyInto(volume, await chain.activeImage(src.chain), src.share);
      const tempId = tempSnapshotId(volume.id);
      await chain.createSnapshot(src.chain, tempId);
      let location: Location;
      try {
        location = await this.copyInto(volume, await chain.snapshotImage(src.chain, tempId), src.share);
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
      return location;
    });
  }

  async revertToSnapshot(volume: VolumeRef, snapshot: SnapshotRef): Promise<Location> {
    this.requireSnapshots();
    return this.locks.with(volume.id, async () => {
      const placement = await this.need(volume);
      await chain.revertToSnapshot(placement.chain, snapshot.id);
      return this.location(placement, (await chain.activeImage(placement.chain)).file);
    });
  }

  async attach(volume: VolumeRef): Promise<Attachment> {
    return this.locks.with(volume.id, async () => {
      const placement = await this.need(volume);
      const active = await chain.activeImage(placement.chain);
      return { path: active.path, connectionInfo: this.connectionInfo(placement, active, active.path) };
    });
  }

  // A file needs nothing undone on this host.
  async detach(): Promise<void> {}

  // NFS needs nothing from the connecting host: it mounts the export itself.
  validateConnector(): void {}

  async connect(volume: VolumeRef): Promise<Attachment> {
    return this.locks.with(volume.id, async () => {
      const placement = await this.need(volume);
      const active = await chain.activeImage(placement.chain);
      return { path: null, connectionInfo: this.connectionInfo(placement, active) };
    });
  }

  // The export is the share itself, shared by every volume on it: nothing to take down per volume.
  async disconnect(): Promise<void> {}

  async connectionSize(volume: VolumeRef): Promise<number> {
    return this.locks.with(volume.id, async () => {
      const active = await chain.activeImage((await this.need(volume)).chain);
      return sizeOf(this.run, active.path, active.format);
    });
  }

  async scan(): Promise<ScanResult> {
    const found = await this.scanShares();
    return {
      volumes: found.map((f) => ({ id: f.id, size: Math.ceil(f.virtualSize / GiB), location: f.location })),
      snapshots: found.flatMap((f) =>
        f.snapshots.map((s) => ({ id: s.id, volumeId: f.id, location: { share: f.share, file: s.file } })),
      ),
      leftovers: [],
      strays: [],
    };
  }

  async removeLeftover(): Promise<void> {}

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

  private placement(share: string, volumeId: string, baseFormat: ImageFormat): Placement {
    return { share, chain: { run: this.run, dir: this.dirOf(share), volumeId, baseFormat } };
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
      const present = await Promise.all(
        [volumeFile(volume.id), infoFile(volume.id)].map((f) => stat(join(dir, f)).then(() => true, () => false)),
      );
      if (present.includes(true)) return this.placement(candidate, volume.id, baseFormat);
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

  private async refuseExisting(path: string, share: string): Promise<void> {
    const exists = await stat(path).then(() => true, () => false);
    if (exists) throw new ConflictError(`${path} already exists on share ${share}`, { path });
  }

  /**
   * Copies an image (a snapshot's point-in-time file, or a volume's) into a new volume file of the
   * backend's format, grown to the volume's size (cinder's _copy_volume_from_snapshot).
   */
  private async copyInto(volume: VolumeRef, image: Image, share: string): Promise<Location> {
    const virtualSize = await sizeOf(this.run, image.path, image.format);
    if (volume.size * GiB < virtualSize) {
      throw new InvalidArgumentError(`a ${volume.size} GiB volume cannot hold a ${toGb(virtualSize)} GiB image`, {
        size: volume.size,
        sourceGb: toGb(virtualSize),
      });
    }
    const file = volumeFile(volume.id);
    const path = join(this.dirOf(share), file);
    await this.refuseExisting(path, share);
    const format = this.config.format;
    const preallocate = format === 'raw' && !this.config.sparse;
    try {
      await qemuImg.convert(this.run, image, { path, format }, preallocate);
      if (volume.size * GiB > virtualSize) await qemuImg.resize(this.run, path, format, volume.size, preallocate);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    (await this.loadProvisioned()).set(volume.id, share, volume.size * GiB);
    return { share, format, activeFile: file };
  }

  /** Shares usable now: local folders that exist, remote shares that are mounted. */
  private async usableShares(): Promise<string[]> {
    const usable: string[] = [];
    for (const share of this.config.shares) {
      const ok = isRemoteShare(share)
        ? await isMounted(this.dirOf(share), this.mountInfoPath)
        : await stat(share).then((s) => s.isDirectory(), () => false);
      if (ok) usable.push(share);
    }
    return usable;
  }

  private async room(share: string, provisioned: Provisioned): Promise<number> {
    const space = await shareSpace(this.dirOf(share));
    return usableBytes(space, provisioned.bytes(share), {
      reservedPercentage: this.config.reservedPercentage,
      maxOverSubscriptionRatio: this.config.maxOverSubscriptionRatio,
      thin: this.thin,
    });
  }

  /** cinder's _find_share: among shares with room, the one with the least provisioned. */
  private async chooseShare(sizeGb: number): Promise<string> {
    const shares = await this.usableShares();
    if (shares.length === 0) {
      throw new BackendError(`no share of backend ${this.name} is mounted`, { shares: this.config.shares });
    }
    const provisioned = await this.loadProvisioned();
    let best: string | null = null;
    let most = 0;
    for (const share of shares) {
      const room = await this.room(share, provisioned);
      most = Math.max(most, room);
      if (room > sizeGb * GiB && (best === null || provisioned.bytes(share) < provisioned.bytes(best))) best = share;
    }
    if (best === null) {
      throw new ConflictError(`no share of backend ${this.name} has room for ${sizeGb} GiB`, {
        requestedGb: sizeGb,
        freeGb: toGb(most),
      });
    }
    return best;
  }

  /** cinder's extend check: the share must have room for the growth. */
  private async checkRoom(share: string, addGb: number): Promise<void> {
    if (addGb <= 0) return;
    const room = await this.room(share, await this.loadProvisioned());
    if (room <= addGb * GiB) {
      throw new ConflictError(`share ${share} of backend ${this.name} has no room for ${addGb} GiB more`, {
        requestedGb: addGb,
        freeGb: toGb(room),
      });
    }
  }

  private async loadProvisioned(refresh = false): Promise<Provisioned> {
    if (!this.provisioned || refresh) this.provisioned = this.provisionedFrom(await this.scanShares());
    return this.provisioned;
  }

  private provisionedFrom(found: Found[]): Provisioned {
    const provisioned = new Provisioned();
    for (const f of found) provisioned.set(f.id, f.share, f.virtualSize);
    return provisioned;
  }

  private async scanShares(): Promise<Found[]> {
    const found: Found[] = [];
    for (const share of await this.usableShares()) {
      for (const name of await readdir(this.dirOf(share))) {
        const id = volumeIdOfFile(name);
        if (id !== null) found.push(await this.scanVolume(share, id));
      }
    }
    return found;
  }

  private async scanVolume(share: string, id: string): Promise<Found> {
    const { chain: c } = this.placement(share, id, this.config.format);
    const info = await readInfo(join(c.dir, infoFile(id)), id);
    const active = info?.active ?? volumeFile(id);
    let baseFormat: ImageFormat = this.config.format;
    let size: number;
    if (active === volumeFile(id)) {
      // No overlay names the base file's format; volumes of this backend are made in its format.
      const path = join(c.dir, active);
      size = await sizeOf(this.run, path, baseFormat);
    } else {
      const images = await qemuImg.backingChain(this.run, join(c.dir, active), 'qcow2');
      const bottom = images.at(-1)?.format;
      if (bottom === 'raw' || bottom === 'qcow2') baseFormat = bottom;
      size = images[0]?.virtualSize ?? 0;
    }
    const snapshots = Object.entries(info ?? {})
      .filter(([key]) => key !== 'active' && !isTempSnapshotId(key))
      .map(([snapshotId, file]) => ({ id: snapshotId, file }));
    return { share, id, virtualSize: size, location: { share, format: baseFormat, activeFile: active }, snapshots };
  }
}
