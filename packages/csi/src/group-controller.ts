import { status } from '@grpc/grpc-js';
import { NotFoundError, type Fleet, type GroupSnapshot, type Volume } from '@kindling/sdk';
import { CsiError, invalid, notFound, required } from './errors.js';
import { groupHandle, parseGroupHandle, parseVolumeHandle } from './ids.js';
import { InFlight } from './locks.js';
import { csiSnapshot, timestamp, volumeIdOf } from './present.js';
import { Router } from './router.js';
import type { CsiSnapshot, Timestamp } from './types.js';

interface CsiGroupSnapshot {
  groupSnapshotId: string;
  snapshots: (CsiSnapshot & { groupSnapshotId: string })[];
  creationTime: Timestamp;
  readyToUse: boolean;
}
interface GroupRequest {
  groupSnapshotId: string;
  snapshotIds: string[];
}

function csiGroup(group: GroupSnapshot, hostId: string): CsiGroupSnapshot {
  const groupSnapshotId = groupHandle({ hostId, groupId: group.id });
  return {
    groupSnapshotId,
    snapshots: group.snapshots.map((s) => ({ ...csiSnapshot(s, hostId), groupSnapshotId })),
    creationTime: timestamp(group.createdAt),
    readyToUse: group.status === 'available',
  };
}

/**
 * The CSI GroupController over the agents' group snapshots: every member of a group is on one host,
 * cut at one instant there; members on several hosts are refused. A group is restored as each member
 * snapshot is, by CreateVolume from that snapshot.
 */
export class GroupController {
  readonly #router: Router;
  readonly #inFlight = new InFlight();

  constructor(fleet: Fleet) {
    this.#router = new Router(fleet);
  }

  groupControllerGetCapabilities() {
    return { capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }] };
  }

  async createVolumeGroupSnapshot(req: { name: string; sourceVolumeIds: string[] }): Promise<{ groupSnapshot: CsiGroupSnapshot }> {
    const name = required(req.name, 'name');
    if (!req.sourceVolumeIds.length) throw invalid('source_volume_ids is required');
    const refs = req.sourceVolumeIds.map((id) => {
      const ref = parseVolumeHandle(id);
      if (!ref) throw notFound(`no volume ${id}`);
      return ref;
    });
    const hosts = [...new Set(refs.map((r) => r.hostId))];
    if (hosts.length > 1) {
      throw invalid(`a group snapshot's volumes must all be on one host (these are on ${hosts.join(', ')}): members on several hosts cannot be cut at one instant`);
    }
    const hostId = hosts[0]!;
    return this.#inFlight.run([`group-name:${name}`, ...req.sourceVolumeIds.map((id) => `volume:${id}`)], async () => {
      const agent = this.#router.agent(hostId);
      if (!agent) throw notFound(`no agent has host ${hostId}`);
      const existing = await agent.agent.groupSnapshotNamed(name);
      if (existing) {
        const sources = existing.snapshots.map((s) => volumeIdOf(s.volume, hostId));
        if (sources.length !== req.sourceVolumeIds.length || sources.some((id, i) => id !== req.sourceVolumeIds[i])) {
          throw new CsiError(status.ALREADY_EXISTS, `group snapshot ${name} exists with other source volumes`);
        }
        return { groupSnapshot: csiGroup(existing, hostId) };
      }
      const volumes: Volume[] = [];
      for (const ref of refs) {
        const volume = await this.#router.volume(ref);
        if (!volume) throw notFound(`no volume ${ref.volumeId} on host ${hostId}`);
        volumes.push(volume);
      }
      return { groupSnapshot: csiGroup(await agent.agent.createGroupSnapshot(volumes, { name }), hostId) };
    });
  }

  async getVolumeGroupSnapshot(req: GroupRequest): Promise<{ groupSnapshot: CsiGroupSnapshot }> {
    const id = required(req.groupSnapshotId, 'group_snapshot_id');
    const found = await this.#find(id);
    if (!found) throw notFound(`no group snapshot ${id}`);
    const group = csiGroup(found.group, found.hostId);
    this.#sameMembers(group, req.snapshotIds);
    return { groupSnapshot: group };
  }

  async deleteVolumeGroupSnapshot(req: GroupRequest): Promise<Record<string, never>> {
    const id = required(req.groupSnapshotId, 'group_snapshot_id');
    return this.#inFlight.run([`group:${id}`], async () => {
      const found = await this.#find(id);
      // Gone already (or never made by this driver): deleted is what was asked.
      if (!found) return {};
      this.#sameMembers(csiGroup(found.group, found.hostId), req.snapshotIds);
      await found.group.delete();
      return {};
    });
  }

  /** The spec's snapshot_ids, when given, must be the group's members. */
  #sameMembers(group: CsiGroupSnapshot, snapshotIds: string[]): void {
    if (!snapshotIds.length) return;
    const members = new Set(group.snapshots.map((s) => s.snapshotId));
    if (snapshotIds.length !== members.size || snapshotIds.some((s) => !members.has(s))) {
      throw invalid(`snapshot_ids are not the members of group snapshot ${group.groupSnapshotId}`);
    }
  }

  async #find(id: string): Promise<{ group: GroupSnapshot; hostId: string } | null> {
    const ref = parseGroupHandle(id);
    const agent = ref && this.#router.agent(ref.hostId);
    if (!ref || !agent) return null;
    try {
      return { group: await agent.agent.groupSnapshot(ref.groupId), hostId: ref.hostId };
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
  }
}
