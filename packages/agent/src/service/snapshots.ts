import { randomUUID } from 'node:crypto';
import {
  InvalidArgumentError,
  KindlingError,
  NotFoundError,
  type ParsedOpArgs,
  type SnapshotRecord,
  type VolumeRecord,
} from '@kindling/protocol';
import type { Driver } from '../drivers/driver.js';
import type { RequestMark } from '../index/store.js';
import { refuseTornCopy, refuseWhileInUse, requireCapability } from './capabilities.js';
import { snapshotRef, volumeRef, type ServiceContext } from './context.js';
import { now, transition } from './lifecycle.js';
import { snapshotPage } from './listing.js';
import { settleRevertSnapshot } from './recovery.js';
import { READABLE, requireStatus, SNAPSHOT_DELETABLE, SNAPSHOT_READY } from './status.js';
import type { VolumeService } from './volumes.js';

/** In use on a backend that snapshots in use only where this host serves the volume (NFS): the driver's to do live, or refuse. */
const liveInUse = (driver: Driver, volume: VolumeRecord): boolean => volume.status === 'in-use' && driver.capabilities().snapshotInUse !== true;

export class SnapshotService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly volumes: VolumeService,
  ) {}

  get(id: string): SnapshotRecord {
    const snapshot = this.ctx.index.getSnapshot(id);
    if (!snapshot) throw new NotFoundError(`no snapshot ${id}`, { id });
    return snapshot;
  }

  list(args: ParsedOpArgs<'snapshot.list'>): ReturnType<typeof snapshotPage> {
    return snapshotPage(this.ctx.index, args);
  }

  private save = (record: SnapshotRecord, mark?: RequestMark): Promise<void> => this.ctx.index.putSnapshot(record, undefined, mark);
  private publish = (record: SnapshotRecord): void => this.ctx.events.publish({ event: 'snapshot', resource: record });

  async create(args: ParsedOpArgs<'snapshot.create'>, id: string = randomUUID()): Promise<SnapshotRecord> {
    return this.ctx.locks.with([args.volumeId], () => this.createHeld(args, id));
  }

  /** create() for a caller that already holds the volume's lock (a group snapshot holds all its members'). */
  async createHeld(args: ParsedOpArgs<'snapshot.create'>, id: string): Promise<SnapshotRecord> {
    const volume = this.volumes.get(args.volumeId);
    const driver = this.volumes.driverOf(volume);
    requireCapability(driver, 'snapshot', 'snapshots');
    requireStatus(volume, READABLE, 'snapshot volume');
    // A connected NFS host keeps writing the old file, which would become the snapshot's base: cinder
    // needs the compute host's help for that. The NFS driver has it when this host's
    // qemu-storage-daemon serves the volume, and refuses the rest itself.
    const live = liveInUse(driver, volume);
    if (!driver.snapshotsWhenServed) refuseTornCopy(driver, volume, 'snapshot');
    const at = now();
    const record: SnapshotRecord = {
      id,
      backend: volume.backend,
      volumeId: volume.id,
      name: args.name ?? null,
      description: args.description ?? null,
      volumeSize: volume.size,
      status: 'creating',
      createdAt: at,
      updatedAt: at,
      location: {},
      error: null,
    };
    let volumeAfter: VolumeRecord['location'] | undefined;
    const created = await transition({
      record,
      during: 'creating',
      settle: 'available',
      failure: 'error',
      undo: async () => {
        const never: SnapshotRecord = { ...record, status: 'deleted', updatedAt: now() };
        await this.ctx.index.deleteSnapshot(never);
        this.publish(never);
      },
      subject: { snapshotId: record.id },
      save: this.save,
      publish: this.publish,
      progress: { kind: 'snapshot', id: record.id, publish: this.ctx.events.progress },
      oweScan: () => this.ctx.backends.oweScan(record.backend),
      work: async () => {
        const result = await driver.createSnapshot(snapshotRef(record), volumeRef(volume), live);
        volumeAfter = result.volume;
        return { location: result.snapshot };
      },
    });
    if (volumeAfter) await this.updateVolumeLocation(volume.id, volumeAfter, created);
    this.ctx.backends.capacityChanged(volume.backend);
    return created;
  }

  /** The volume's own location changes with its chain (NFS's active overlay); written with the snapshot. */
  private async updateVolumeLocation(volumeId: string, location: VolumeRecord['location'], snapshot: SnapshotRecord | null) {
    const volume = { ...this.volumes.get(volumeId), location, updatedAt: now() };
    if (snapshot) await this.ctx.index.putSnapshot(snapshot, volume);
    else await this.ctx.index.putVolume(volume);
    this.volumes.publish(volume);
  }

  async delete(id: string): Promise<SnapshotRecord> {
    const { volumeId } = this.get(id);
    return this.ctx.locks.with([volumeId, id], () => this.deleteHeld(id));
  }

  /** delete() for a caller that already holds the locks of the snapshot and its volume. */
  async deleteHeld(id: string): Promise<SnapshotRecord> {
    const snapshot = this.get(id);
    const volumeId = snapshot.volumeId;
    const volume = this.volumes.get(volumeId);
    const driver = this.volumes.driverOf(volume);
    requireStatus(snapshot, SNAPSHOT_DELETABLE, 'delete snapshot');
    // As for create: the NFS driver commits through the daemon serving the volume, or refuses.
    if (!driver.snapshotsWhenServed) refuseWhileInUse(driver, volume, 'snapshotInUse', 'delete a snapshot of');
    let volumeLocation = volume.location;
    const gone = await transition({
      record: snapshot,
      during: 'deleting',
      failure: 'error_deleting',
      undo: async () => {
        await this.save(snapshot);
        this.publish(snapshot);
      },
      subject: { snapshotId: snapshot.id },
      save: this.save,
      publish: this.publish,
      progress: { kind: 'snapshot', id: snapshot.id, publish: this.ctx.events.progress },
      oweScan: () => this.ctx.backends.oweScan(snapshot.backend),
      work: async () => {
        ({ volume: volumeLocation } = await driver.deleteSnapshot(snapshotRef(snapshot), volumeRef(volume), liveInUse(driver, volume)));
        return {};
      },
      // The snapshot record goes, and its volume's new chain location is written, in one batch.
      finish: async (during) => {
        const deleted: SnapshotRecord = { ...during, status: 'deleted', updatedAt: now() };
        const updatedVolume = { ...this.volumes.get(volumeId), location: volumeLocation, updatedAt: now() };
        await this.ctx.index.deleteSnapshot(deleted, updatedVolume);
        this.publish(deleted);
        this.volumes.publish(updatedVolume);
        return deleted;
      },
    });
    this.ctx.backends.capacityChanged(volume.backend);
    return gone;
  }

  async createVolume(args: ParsedOpArgs<'snapshot.createVolume'>, id: string = randomUUID()): Promise<VolumeRecord> {
    const { volumeId } = this.get(args.id);
    return this.ctx.locks.with([volumeId, args.id], async () => {
      const snapshot = this.get(args.id);
      requireStatus(snapshot, SNAPSHOT_READY, 'create a volume from snapshot');
      const source = this.volumes.get(volumeId);
      const driver = this.volumes.driverOf(source);
      requireCapability(driver, 'createFromSnapshot', 'volumes from snapshots');
      const size = this.volumes.sizeFrom(args.size, snapshot.volumeSize, 'snapshot');
      const record = this.volumes.draft(id, source.backend, { ...args, size }, { snapshotId: snapshot.id });
      return this.volumes.build(record, () =>
        driver.createVolumeFromSnapshot(volumeRef(record), snapshotRef(snapshot), volumeRef(source)),
      );
    });
  }

  async revert(volumeId: string, snapshotId: string): Promise<VolumeRecord> {
    return this.ctx.locks.with([volumeId, snapshotId], async () => {
      const volume = this.volumes.get(volumeId);
      const snapshot = this.get(snapshotId);
      if (snapshot.volumeId !== volumeId) {
        throw new InvalidArgumentError(`snapshot ${snapshotId} is not of volume ${volumeId}`, { volumeId, snapshotId });
      }
      const driver = this.volumes.driverOf(volume);
      requireCapability(driver, 'revertToSnapshot', 'reverting to a snapshot');
      requireStatus(volume, ['available'], 'revert volume');
      requireStatus(snapshot, SNAPSHOT_READY, 'revert to snapshot');
      // The data goes back to the snapshot's (cinder shrinks nothing: a grown volume keeps its size).
      // `reverting` names the snapshot, so that recovery finishes an interrupted revert (drivers resume it).
      // Both records settle whatever the outcome: a snapshot whose storage went with a failed revert is not left available.
      return this.volumes
        .transition({
          record: volume,
          during: 'reverting',
          note: { revertingTo: snapshot.id },
          work: async () => ({ location: await driver.revertToSnapshot(volumeRef(volume), snapshotRef(snapshot)) }),
          settle: volume.status,
          failure: 'error',
          undo: () => this.volumes.restore(volume),
        })
        .catch(async (err: unknown) => {
          if (err instanceof KindlingError) await settleRevertSnapshot(this.ctx, snapshot, err);
          throw err;
        });
    });
  }
}
