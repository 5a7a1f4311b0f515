import { randomUUID } from 'node:crypto';
import {
  ConflictError,
  NotFoundError,
  messageOf,
  toErrorInfo,
  type GroupSnapshotRecord,
  type ParsedOpArgs,
  type VolumeRecord,
} from '@kindling/protocol';
import type { Driver, WriteHold } from '../drivers/driver.js';
import { log } from '../log.js';
import { requestMark, withoutMark } from '../request-context.js';
import { requireCapability } from './capabilities.js';
import { volumeRef, type ServiceContext } from './context.js';
import { now } from './lifecycle.js';
import type { SnapshotService } from './snapshots.js';
import { READABLE, requireStatus } from './status.js';
import type { VolumeService } from './volumes.js';

/**
 * Group snapshots (docs/api.md, "Group snapshots"; recovery rule: drivers/groups-recovery.md). Every
 * member's lock is held from the first check to the last snapshot, so no operation of this agent
 * changes a member between the cuts. Members in use (a host may be writing them) have their writes held
 * by their driver from before the first cut to after the last, for at most HOLD_LIMIT_MS: a hold that
 * ran out fails the group, which then leaves no member snapshot behind. A backend that cannot hold
 * writes (NFS: the writer is the host's own file client) refuses its members in use.
 */
/** The longest writes to members in use are held: a host's writes to them stall at most this long. */
export const HOLD_LIMIT_MS = 30_000;

export class GroupService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly volumes: VolumeService,
    private readonly snapshots: SnapshotService,
  ) {}

  get(id: string): GroupSnapshotRecord {
    const group = this.ctx.index.getGroup(id);
    if (!group) throw new NotFoundError(`no group snapshot ${id}`, { id });
    return group;
  }

  list(): GroupSnapshotRecord[] {
    return [...this.ctx.index.allGroups()].sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  async create(args: ParsedOpArgs<'group.create'>, id: string = randomUUID()): Promise<GroupSnapshotRecord> {
    return this.ctx.locks.with(args.volumeIds, async () => {
      const members = args.volumeIds.map((v) => this.volumes.get(v));
      // Every member is checked before any is cut: a refusal changes nothing.
      for (const volume of members) {
        const driver = this.volumes.driverOf(volume);
        requireCapability(driver, 'snapshot', 'snapshots');
        requireStatus(volume, READABLE, 'snapshot volume');
        if (volume.status === 'in-use' && !driver.holdWrites) {
          throw new ConflictError(`volume ${volume.id} is in use, and backend ${driver.name} cannot hold its writes for a group snapshot; detach it first`, {
            id: volume.id,
            status: volume.status,
            backend: driver.name,
          });
        }
      }
      const at = now();
      const record: GroupSnapshotRecord = {
        id,
        name: args.name ?? null,
        status: 'creating',
        volumeIds: args.volumeIds,
        snapshotIds: args.volumeIds.map(() => randomUUID()),
        createdAt: at,
        updatedAt: at,
        error: null,
      };
      // Written first, with every member's id: after a kill, recovery finds what to remove.
      await this.ctx.index.putGroup(record, requestMark(record));
      try {
        await this.held(members, () =>
          withoutMark(async () => {
            for (const [i, volumeId] of args.volumeIds.entries()) {
              await this.snapshots.createHeld({ volumeId, name: args.name }, record.snapshotIds[i] as string);
            }
          }),
        );
      } catch (err) {
        await this.abandon(record, err);
        throw err;
      }
      const done: GroupSnapshotRecord = { ...record, status: 'available', updatedAt: now() };
      await this.ctx.index.putGroup(done);
      return done;
    });
  }

  /** Runs `cut` with the writes to the members in use held, per backend; fails when a hold ran out first. */
  private async held(members: VolumeRecord[], cut: () => Promise<void>): Promise<void> {
    const byDriver = new Map<Driver, VolumeRecord[]>();
    for (const volume of members.filter((v) => v.status === 'in-use')) {
      const driver = this.volumes.driverOf(volume);
      byDriver.set(driver, [...(byDriver.get(driver) ?? []), volume]);
    }
    const holds: WriteHold[] = [];
    try {
      for (const [driver, volumes] of byDriver) {
        // Checked in create(): a backend with members in use holds writes.
        if (driver.holdWrites) holds.push(await driver.holdWrites(volumes.map(volumeRef), HOLD_LIMIT_MS));
      }
      await cut();
      if (holds.some((h) => h.expired)) {
        throw new ConflictError(`the members' writes could not be held for more than ${HOLD_LIMIT_MS} ms: the cuts would not be one instant`, {
          limitMs: HOLD_LIMIT_MS,
        });
      }
    } finally {
      const released = await Promise.allSettled(holds.map((h) => h.release()));
      const failed = released.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) log.error({ err: messageOf(failed.reason) }, 'a group snapshot could not release its hold on writes');
    }
  }

  /**
   * A create that failed: the member snapshots it made (and a failed one's `error` record) go, then the
   * group; a member that cannot go keeps the group in `error`, for a delete to finish.
   */
  private async abandon(record: GroupSnapshotRecord, cause: unknown): Promise<void> {
    const left = await this.removeMembers(record.snapshotIds);
    if (left.length === 0) await this.ctx.index.deleteGroup(record.id);
    else await this.ctx.index.putGroup({ ...record, status: 'error', error: toErrorInfo(cause), updatedAt: now() });
  }

  /** Deletes the member snapshots that exist (the caller holds their volumes' locks); returns those it could not. */
  private async removeMembers(snapshotIds: string[]): Promise<string[]> {
    const left: string[] = [];
    for (const snapshotId of snapshotIds) {
      if (!this.ctx.index.getSnapshot(snapshotId)) continue;
      try {
        await this.snapshots.deleteHeld(snapshotId);
      } catch {
        left.push(snapshotId);
      }
    }
    return left;
  }

  /** Deletes every member snapshot, then the group; a member that fails keeps the group (in `error`) for a retry. */
  async delete(id: string): Promise<GroupSnapshotRecord> {
    const group = this.get(id);
    return this.ctx.locks.with([...group.volumeIds, ...group.snapshotIds, id], async () => {
      const current = this.get(id);
      if (current.status === 'creating' || current.status === 'deleting') {
        throw new ConflictError(`group snapshot ${id} is ${current.status}`, { id, status: current.status });
      }
      const deleting: GroupSnapshotRecord = { ...current, status: 'deleting', updatedAt: now() };
      await this.ctx.index.putGroup(deleting, requestMark(deleting));
      const left = await withoutMark(() => this.removeMembers(current.snapshotIds));
      if (left.length > 0) {
        const error = toErrorInfo(new ConflictError(`member snapshots ${left.join(', ')} could not be deleted`, { left }));
        await this.ctx.index.putGroup({ ...current, status: 'error', error, updatedAt: now() });
        throw new ConflictError(error.message, { id, left });
      }
      await this.ctx.index.deleteGroup(id);
      return { ...current, status: 'deleted', updatedAt: now() };
    });
  }

  /**
   * After a kill: a group left `creating` or `deleting` loses every member snapshot that exists and
   * then its record (a partial cut is never completed: its members were not taken at one instant).
   */
  async recover(): Promise<string[]> {
    const settled: string[] = [];
    for (const group of [...this.ctx.index.allGroups()]) {
      if (group.status !== 'creating' && group.status !== 'deleting') continue;
      await this.ctx.locks.with([...group.volumeIds, ...group.snapshotIds, group.id], async () => {
        const left = await this.removeMembers(group.snapshotIds);
        if (left.length === 0) await this.ctx.index.deleteGroup(group.id);
        else await this.ctx.index.putGroup({ ...group, status: 'error', updatedAt: now() });
      });
      settled.push(group.id);
    }
    return settled;
  }
}
