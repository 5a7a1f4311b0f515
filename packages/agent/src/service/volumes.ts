import { randomUUID } from 'node:crypto';
import {
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  type ParsedOpArgs,
  type VolumeListing,
  type VolumeRecord,
} from '@kindling/protocol';
import type { Driver } from '../drivers/driver.js';
import type { RequestMark } from '../index/store.js';
import { volumeRef, type ServiceContext } from './context.js';
import { now, transition, type Lifecycle } from './lifecycle.js';
import { refuseTornCopy, refuseWhileInUse, requireCapability, withDeviceMapperHint } from './capabilities.js';
import { findOnStorage, settledOnStorage } from './recovery.js';
import { volumePage } from './listing.js';
import { DELETABLE, READABLE, SETTLED_OR_FAILED, requireStatus } from './status.js';

type NewVolume = { size?: number; name?: string; description?: string; metadata?: Record<string, string> };

export class VolumeService {
  constructor(private readonly ctx: ServiceContext) {}

  get(id: string): VolumeRecord {
    const volume = this.ctx.index.getVolume(id);
    if (!volume) throw new NotFoundError(`no volume ${id}`, { id });
    return volume;
  }

  async list(args: ParsedOpArgs<'volume.list'>): Promise<VolumeListing> {
    if (args.backend !== undefined && args.id === undefined && args.name === undefined) this.ctx.backends.get(args.backend);
    return volumePage(this.ctx.index, args);
  }

  /**
   * A new record in `creating`, written and published before any storage work starts. `id` is fixed by
   * the caller: the rpc layer records it against the client's request id first, so a retry after a crash
   * finds this volume instead of making another.
   */
  draft(id: string, backend: string, fields: NewVolume & { size: number }, origin: Partial<VolumeRecord> = {}): VolumeRecord {
    const at = now();
    return {
      id,
      backend,
      name: fields.name ?? null,
      description: fields.description ?? null,
      size: fields.size,
      status: 'creating',
      metadata: fields.metadata ?? {},
      createdAt: at,
      updatedAt: at,
      sourceVolId: null,
      snapshotId: null,
      location: {},
      error: null,
      ...origin,
    };
  }

  /** Runs a create-like driver call for a drafted record: creating -> available | error (or no record, when refused). */
  async build(record: VolumeRecord, work: () => Promise<VolumeRecord['location']>): Promise<VolumeRecord> {
    const created = await this.transition({
      record,
      during: 'creating',
      work: async () => ({ location: await work() }),
      settle: 'available',
      failure: 'error',
      undo: async () => {
        await this.forget({ ...record, status: 'deleted', updatedAt: now() });
      },
    });
    this.ctx.backends.capacityChanged(record.backend);
    return created;
  }

  async create(args: ParsedOpArgs<'volume.create'>, id: string = randomUUID()): Promise<VolumeRecord> {
    const driver = this.ctx.backends.usable(args.backend);
    const record = this.draft(id, args.backend, args);
    return this.build(record, () => driver.createVolume(volumeRef(record)));
  }

  async delete(id: string): Promise<VolumeRecord> {
    return this.ctx.locks.with([id], async () => {
      const volume = this.get(id);
      const driver = this.driverOf(volume);
      requireStatus(volume, DELETABLE, 'delete volume');
      const snapshots = this.ctx.index.snapshotsOf(id);
      if (snapshots.length > 0) {
        throw new ConflictError(`volume ${id} has ${snapshots.length} snapshot(s); delete them first`, {
          id,
          snapshots: snapshots.map((s) => s.id),
        });
      }
      const connections = this.ctx.index.connectionsOf(id);
      if (connections.length > 0) {
        throw new ConflictError(`volume ${id} is connected; disconnect it first`, { id, connections: connections.map((c) => c.id) });
      }
      const gone = await this.transition({
        record: volume,
        during: 'deleting',
        work: async () => {
          await withDeviceMapperHint(driver, () => driver.deleteVolume(volumeRef(volume)));
          return {};
        },
        finish: async (during) => this.forget({ ...during, status: 'deleted', updatedAt: now() }),
        failure: 'error_deleting',
        undo: () => this.restore(volume),
      });
      this.ctx.backends.capacityChanged(volume.backend);
      return gone;
    });
  }

  async extend(id: string, size: number): Promise<VolumeRecord> {
    return this.ctx.locks.with([id], async () => {
      const volume = this.get(id);
      const driver = this.driverOf(volume);
      requireStatus(volume, READABLE, 'extend volume');
      if (size <= volume.size) {
        throw new InvalidArgumentError(`new size ${size} GiB must be larger than the current ${volume.size} GiB`, {
          id,
          size,
          currentSize: volume.size,
        });
      }
      if (this.ctx.index.snapshotsOf(id).length > 0) {
        requireCapability(driver, 'extendWithSnapshots', 'extending a volume that has snapshots');
        // A thick LVM origin with snapshots must be deactivated to grow.
        refuseWhileInUse(driver, volume, 'extendInUseWithSnapshots', 'extend (it has snapshots)');
      }
      const extended = await this.transition({
        record: volume,
        during: 'extending',
        work: async () => ({ size, location: await driver.extendVolume(volumeRef(volume), size) }),
        settle: volume.status,
        failure: 'error',
        undo: () => this.restore(volume),
        // A resize that failed part way may have grown the volume: what storage holds is its size.
        settleOnStorage: async () => settledOnStorage(this.ctx, volume, await findOnStorage(driver, id)),
      });
      this.ctx.backends.capacityChanged(volume.backend);
      return extended;
    });
  }

  async clone(args: ParsedOpArgs<'volume.clone'>, id: string = randomUUID()): Promise<VolumeRecord> {
    // The source lock keeps its data (and an NFS snapshot chain) still while it is copied; its size and
    // status are read under it, so a clone queued behind an extend is sized from the extended source.
    return this.ctx.locks.with([args.id], async () => {
      const source = this.get(args.id);
      const driver = this.driverOf(source);
      requireStatus(source, READABLE, 'clone volume');
      requireCapability(driver, 'clone', 'clones');
      refuseTornCopy(driver, source, 'clone');
      const size = this.sizeFrom(args.size, source.size, 'source volume');
      const record = this.draft(id, source.backend, { ...args, size }, { sourceVolId: source.id });
      return this.build(record, () => driver.cloneVolume(volumeRef(record), volumeRef(source)));
    });
  }

  /**
   * An operator's way out of `error` (and of `error_deleting` whose delete got through): the record is
   * settled against storage by recovery's rules, refused (CONFLICT) when storage does not hold the
   * volume whole or a delete may have cleared part of it.
   */
  async resetState(id: string): Promise<VolumeRecord> {
    return this.ctx.locks.with([id], async () => {
      const volume = this.get(id);
      requireStatus(volume, SETTLED_OR_FAILED, 'reset the state of volume');
      const found = await findOnStorage(this.driverOf(volume), id);
      if (volume.status === 'error_deleting') {
        if (!found) return this.forget({ ...volume, status: 'deleted', updatedAt: now() });
        throw new ConflictError(`volume ${id}'s delete was started and may have cleared part of it; delete it again`, { id });
      }
      const settled = settledOnStorage(this.ctx, volume, found);
      if (!settled) {
        const holds = found ? `${found.size} GiB of its ${volume.size}` : 'none of it';
        throw new ConflictError(`storage does not hold volume ${id} whole (it holds ${holds})`, { id, onStorage: found?.size ?? null });
      }
      await this.restore(settled);
      return settled;
    });
  }

  /** A requested size for a volume made from another: at least the source's, defaulting to it. */
  sizeFrom(requested: number | undefined, sourceSize: number, what: string): number {
    if (requested === undefined) return sourceSize;
    if (requested < sourceSize) {
      throw new InvalidArgumentError(`size ${requested} GiB is smaller than the ${what}'s ${sourceSize} GiB`, {
        size: requested,
        sourceSize,
      });
    }
    return requested;
  }

  save = async (record: VolumeRecord, mark?: RequestMark): Promise<void> => this.ctx.index.putVolume(record, mark);

  /** Writes back a record as it was before an operation the driver refused. */
  restore = async (record: VolumeRecord): Promise<void> => {
    await this.save(record);
    this.publish(record);
  };

  /** Drops a record (gone from storage, or never made there) and says so to every session. */
  private async forget(gone: VolumeRecord): Promise<VolumeRecord> {
    await this.ctx.index.deleteVolume(gone);
    this.publish(gone);
    return gone;
  }
  publish = (record: VolumeRecord): void => this.ctx.events.publish({ event: 'volume', resource: record });

  transition(step: Lifecycle<VolumeRecord>): Promise<VolumeRecord> {
    const progress = { kind: 'volume' as const, id: step.record.id, publish: this.ctx.events.progress };
    const oweScan = () => this.ctx.backends.oweScan(step.record.backend);
    return transition({ ...step, subject: { volumeId: step.record.id }, save: this.save, publish: this.publish, progress, oweScan });
  }

  driverOf(volume: VolumeRecord): Driver {
    return this.ctx.backends.usable(volume.backend);
  }
}
