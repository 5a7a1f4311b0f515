import {
  InvalidArgumentError,
  NotFoundError,
  type GroupSnapshotRecord,
  type GroupSnapshotStatus,
  type OpArgs,
} from '@kindling/protocol';
import { splitCall, type CallOptions } from './call-options.js';
import type { Agent, Registry, Snapshot, Volume } from './registry.js';
import type { NewVolumeOptions } from './snapshot.js';

export type CreateGroupSnapshotOptions = Omit<OpArgs<'group.create'>, 'volumeIds'> & CallOptions;

/**
 * Snapshots of several volumes of one agent, cut at one instant (docs/api.md, "Group snapshots"). Each
 * of `snapshots` is the normal Snapshot of its member, in the order the volumes were given, and is in
 * its volume's `snapshots` like any other.
 */
export class GroupSnapshot {
  readonly id: string;
  readonly name: string | null;
  readonly createdAt: string;
  readonly snapshots: readonly Snapshot[];
  #status: GroupSnapshotStatus;
  readonly #registry: Registry;

  /** @internal Made by `agent.createGroupSnapshot` and `agent.groupSnapshot`. */
  constructor(registry: Registry, record: GroupSnapshotRecord, snapshots: Snapshot[]) {
    this.#registry = registry;
    this.id = record.id;
    this.name = record.name;
    this.createdAt = record.createdAt;
    this.#status = record.status;
    this.snapshots = snapshots;
  }

  get status(): GroupSnapshotStatus {
    return this.#status;
  }

  /** Deletes every member snapshot, then the group; each member shows `deleted` and leaves its volume. */
  async delete(options: CallOptions = {}): Promise<void> {
    await this.#registry.call('group.delete', { id: this.id }, options);
    for (const snapshot of this.snapshots) this.#registry.snapshotGone(snapshot);
    this.#status = 'deleted';
  }

  /** Restores the group: one new volume from each member snapshot, in the members' order. */
  async createVolumes(options: Omit<NewVolumeOptions, 'requestId'> = {}): Promise<Volume[]> {
    const volumes: Volume[] = [];
    for (const snapshot of this.snapshots) volumes.push(await snapshot.createVolume(options));
    return volumes;
  }

  /** @internal The group's record with its members as live objects (one volume listing per member). */
  static async load(registry: Registry, record: GroupSnapshotRecord): Promise<GroupSnapshot> {
    const snapshots: Snapshot[] = [];
    for (const [i, volumeId] of record.volumeIds.entries()) {
      const [volume] = registry.listing(await registry.call('volume.list', { id: volumeId, limit: 1 }));
      const snapshot = volume && [...volume.snapshots].find((s) => s.id === record.snapshotIds[i]);
      if (!snapshot) throw new NotFoundError(`member snapshot ${record.snapshotIds[i]} of group snapshot ${record.id} is gone`, { id: record.id });
      snapshots.push(snapshot);
    }
    return new GroupSnapshot(registry, record, snapshots);
  }
}

/** `agent.createGroupSnapshot`: every member must be a volume of this very agent. */
export async function createGroupSnapshot(
  registry: Registry,
  agent: Agent,
  volumes: readonly Volume[],
  options: CreateGroupSnapshotOptions,
): Promise<GroupSnapshot> {
  const elsewhere = volumes.filter((v) => v.backend.agent !== agent);
  if (elsewhere.length > 0) {
    const where = elsewhere.map((v) => `${v.id} (on ${v.backend.agent.url})`).join(', ');
    throw new InvalidArgumentError(
      `a group snapshot's members must all be volumes of the agent at ${agent.url}; not: ${where}. Members on several agents cannot be cut at one instant`,
      { volumeIds: elsewhere.map((v) => v.id) },
    );
  }
  const { args, call } = splitCall(options);
  const record = await registry.call('group.create', { volumeIds: volumes.map((v) => v.id), ...args }, call);
  const snapshots: Snapshot[] = [];
  for (const [i, volume] of volumes.entries()) {
    const id = record.snapshotIds[i] as string;
    // The agent's push of each member usually came first; a session that does not follow the volume asks.
    const pushed = [...volume.snapshots].find((s) => s.id === id);
    snapshots.push(pushed ?? registry.snapshotFrom(await registry.call('snapshot.get', { id }), volume));
  }
  return new GroupSnapshot(registry, record, snapshots);
}
