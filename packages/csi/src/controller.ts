import { status } from '@grpc/grpc-js';
import { roomGbOf } from '@kindling/sdk';
import { GIB, KindlingError, TimeoutError, UnavailableError, type Backend, type Fleet, type Snapshot, type Volume } from '@kindling/sdk';
import { fitsRange, requireCapability, sizeInGiB, unsupportedCapability } from './capabilities.js';
import { CsiError, invalid, notFound, required } from './errors.js';
import { parseSnapshotHandle, parseVolumeHandle, volumeHandle } from './ids.js';
import { InFlight } from './locks.js';
import { pageOverFleet } from './listing.js';
import { NameRecords } from './names.js';
import { CSI_SOURCE_KEY, classParameters, hostOfTopology, hostOrder, placeCopy, placeVolume, requisiteHosts, sourceId, sourceRef } from './placement.js';
import { CSI_NAME_KEY } from './plugin.js';
import { DEFAULT_THIN_POOL_THRESHOLD_PERCENT, publishedNodes, unreachable, volumeStatus, type VolumeStatus } from './condition.js';
import { lastSeen, lastSeenPage } from './last-seen.js';
import { csiVolume, snapshotIdOf, topologyOf } from './present.js';
import { Router } from './router.js';
import { SnapshotRpcs } from './snapshots.js';
import type {
  ControllerExpandVolumeRequest,
  CreateSnapshotRequest,
  CreateVolumeRequest,
  CsiVolume,
  GetCapacityRequest,
  ListRequest,
  ListSnapshotsRequest,
  ValidateVolumeCapabilitiesRequest,
  VolumeContentSource,
} from './types.js';

const CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'LIST_VOLUMES',
  'GET_CAPACITY',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'CLONE_VOLUME',
  'EXPAND_VOLUME',
  'GET_VOLUME',
  'VOLUME_CONDITION',
  'LIST_VOLUMES_PUBLISHED_NODES',
] as const;

export interface ControllerOptions {
  /** Thin pool fill (data or metadata, percent) above which its volumes read abnormal. */
  thinPoolThresholdPercent?: number;
}

/** Refusals that come before any work (checks, room, a busy agent): the create changed nothing. */
function refusedUntouched(err: unknown): boolean {
  if (err instanceof CsiError) return true;
  return err instanceof KindlingError && ['INVALID_ARGUMENT', 'NOT_FOUND', 'CONFLICT', 'UNSUPPORTED', 'BUSY', 'UNAUTHORIZED'].includes(err.code);
}

/** The agent could not be reached for this call: its volumes are then told as last seen, abnormal. */
function unreachableWhy(err: unknown): string | null {
  if (err instanceof CsiError) return err.code === status.UNAVAILABLE ? err.message : null;
  return err instanceof UnavailableError || err instanceof TimeoutError ? err.message : null;
}

/** The CSI Controller service over a fleet of agents. Keeps nothing of its own: every answer comes from the agents (or the SDK's map of what they last said). */
export class Controller {
  readonly #router: Router;
  readonly #fleet: Fleet;
  readonly #inFlight = new InFlight();
  readonly #snapshots: SnapshotRpcs;
  readonly #thinPoolThreshold: number;
  readonly #names: NameRecords;
  /** Backends whose volumes a ListVolumes read to the end: the SDK's map then holds them, to list while their agent is down. */
  readonly #listedToEnd = new WeakSet<Backend>();

  constructor(fleet: Fleet, options: ControllerOptions = {}) {
    this.#fleet = fleet;
    this.#thinPoolThreshold = options.thinPoolThresholdPercent ?? DEFAULT_THIN_POOL_THRESHOLD_PERCENT;
    this.#router = new Router(fleet);
    this.#names = new NameRecords(fleet);
    this.#snapshots = new SnapshotRpcs(fleet, this.#router, this.#inFlight);
  }

  controllerGetCapabilities(): { capabilities: { rpc: { type: string } }[] } {
    return { capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) };
  }

  async createVolume(req: CreateVolumeRequest): Promise<{ volume: CsiVolume }> {
    const name = required(req.name, 'name');
    if (!req.volumeCapabilities.length) throw invalid('volume_capabilities is required');
    for (const cap of req.volumeCapabilities) {
      const why = unsupportedCapability(requireCapability(cap));
      if (why) throw invalid(why);
    }
    const params = classParameters(req.parameters);
    const hosts = hostOrder(req.accessibilityRequirements);
    const given = sourceRef(req.volumeContentSource);
    return this.#inFlight.run([`name:${name}`], async () => {
      // The name first: a retry whose first reply was lost is answered even when its source is gone now.
      const requisite = requisiteHosts(req.accessibilityRequirements);
      const pinned = given ? [...new Set([given.hostId, ...(requisite ?? [])])] : requisite;
      const existing = await this.#byName(name, pinned);
      if (existing) {
        const sameSource =
          (existing.snapshotId === (given?.snapshotId ?? null) && existing.sourceVolId === (given?.volumeId ?? null)) ||
          (given !== null && existing.metadata[CSI_SOURCE_KEY] === sourceId(req.volumeContentSource));
        if (!sameSource || !fitsRange(existing.size, req.capacityRange)) {
          throw new CsiError(status.ALREADY_EXISTS, `volume ${name} exists with another size or source`);
        }
        return { volume: csiVolume(existing, this.#router.hostOf(existing), req.volumeContentSource) };
      }
      const source = await this.#contentSource(req.volumeContentSource);
      const size = sizeInGiB(req.capacityRange, source?.sizeGiB ?? 1);
      const create = { size, name, metadata: { [CSI_NAME_KEY]: name } };
      const volume = await this.#make(name, pinned !== null, async () => {
        if (source && hosts && !hosts.includes(source.hostId)) {
          // A source on another host than the topology allows is copied there, agent to agent (issue 22).
          const backend = await placeCopy(this.#fleet, size, params, hosts);
          return source.make({ ...create, metadata: { ...create.metadata, [CSI_SOURCE_KEY]: sourceId(req.volumeContentSource)! }, backend });
        }
        return source ? source.make(create) : placeVolume(this.#fleet, create, params, hosts);
      });
      return { volume: csiVolume(volume, this.#router.hostOf(volume), req.volumeContentSource) };
    });
  }

  /**
   * The live volume made for this CSI name, found through the name's record (names.ts): its home agent
   * and the agent the volume lives on, never the whole fleet, unless a crash mid-create left the record
   * `pending`. Pinned to `hosts` (a topology or a content source), those hosts are asked by name too,
   * and a home that is down does not stop the call. A failed earlier attempt is removed so the create
   * can run again.
   */
  async #byName(name: string, hosts: string[] | null): Promise<Volume | null> {
    const record = await this.#names.get(name).catch((err: unknown) => {
      if (hosts && unreachableWhy(err) !== null) return null;
      throw err;
    });
    const recorded = record && !record.pending ? await this.#router.volume(record.ref) : null;
    const asked = hosts || record?.pending ? await this.#router.volumesOn(hosts, name) : [];
    const mine = [...new Set([...(recorded ? [recorded] : []), ...asked])].filter((v) => v.status !== 'deleted' && v.metadata[CSI_NAME_KEY] === name);
    for (const v of mine) {
      if (v.status === 'creating') throw new CsiError(status.ABORTED, `volume ${name} is still being created`);
      if (v.status === 'error') await v.delete();
    }
    const found = mine.find((v) => v.status !== 'error') ?? null;
    if (found && record?.pending) await this.#names.made(name, found, this.#router.hostOf(found));
    return found;
  }

  /**
   * Creates the volume with its name recorded first (names.ts), for its retries to find. The home
   * being down stops only a create placed anywhere: a pinned one's retries ask its hosts. Once made, a
   * record that cannot be completed stays `pending`, which a retry settles: the volume is answered.
   */
  async #make(name: string, pinned: boolean, make: () => Promise<Volume>): Promise<Volume> {
    const recorded = await this.#names.pending(name).then(
      () => true,
      (err: unknown) => {
        if (pinned && unreachableWhy(err) !== null) return false;
        throw err;
      },
    );
    let volume: Volume;
    try {
      volume = await make();
    } catch (err) {
      // Refused before any work: nothing was made, so the name is free again.
      if (recorded && refusedUntouched(err)) await this.#names.forget(name);
      throw err;
    }
    if (recorded) {
      await this.#names.made(name, volume, this.#router.hostOf(volume)).catch((err: unknown) => {
        if (unreachableWhy(err) === null) throw err;
      });
    }
    return volume;
  }

  async #contentSource(source: VolumeContentSource | null): Promise<{
    hostId: string;
    sizeGiB: number;
    snapshotId: string | null;
    volumeId: string | null;
    make: (o: { size: number; name: string; metadata: Record<string, string>; backend?: Backend }) => Promise<Volume>;
  } | null> {
    if (source?.snapshot) {
      const ref = parseSnapshotHandle(source.snapshot.snapshotId);
      const snapshot = ref && (await this.#router.snapshot(ref));
      if (!ref || !snapshot) throw notFound(`snapshot ${source.snapshot.snapshotId} does not exist`);
      return { hostId: ref.hostId, sizeGiB: snapshot.volumeSize, snapshotId: snapshot.id, volumeId: null, make: (o) => snapshot.createVolume(o) };
    }
    if (source?.volume) {
      const ref = parseVolumeHandle(source.volume.volumeId);
      const volume = ref && (await this.#router.volume(ref));
      if (!ref || !volume) throw notFound(`volume ${source.volume.volumeId} does not exist`);
      return { hostId: ref.hostId, sizeGiB: volume.size, snapshotId: null, volumeId: volume.id, make: (o) => volume.clone(o) };
    }
    return null;
  }

  async deleteVolume(req: { volumeId: string }): Promise<Record<string, never>> {
    const id = required(req.volumeId, 'volume_id');
    return this.#inFlight.run([`volume:${id}`], async () => {
      const ref = parseVolumeHandle(id);
      const volume = ref && (await this.#router.volume(ref));
      // Gone or never made: the spec's idempotent success.
      if (!volume) return {};
      const name = volume.metadata[CSI_NAME_KEY];
      await volume.delete();
      if (name !== undefined && ref) await this.#forgetName(name, ref.volumeId);
      return {};
    });
  }

  /** The name's record goes with its volume; a home that is down keeps it, and reads of it find the volume gone. */
  async #forgetName(name: string, volumeId: string): Promise<void> {
    try {
      const record = await this.#names.get(name);
      if (record && !record.pending && record.ref.volumeId === volumeId) await this.#names.forget(name);
    } catch (err) {
      if (unreachableWhy(err) === null) throw err;
    }
  }

  async validateVolumeCapabilities(req: ValidateVolumeCapabilitiesRequest) {
    const id = required(req.volumeId, 'volume_id');
    if (!req.volumeCapabilities.length) throw invalid('volume_capabilities is required');
    req.volumeCapabilities.forEach(requireCapability);
    const ref = parseVolumeHandle(id);
    if (!ref || !(await this.#router.volume(ref))) throw notFound(`volume ${id} does not exist`);
    const why = req.volumeCapabilities.map(unsupportedCapability).find((w) => w !== null);
    if (why) return { confirmed: null, message: why };
    return { confirmed: { volumeContext: req.volumeContext, volumeCapabilities: req.volumeCapabilities, parameters: req.parameters }, message: '' };
  }

  /** Each volume with where it is published and its condition; an agent that is down lists what was last seen there. */
  async listVolumes(req: ListRequest) {
    type Listed = { volume: Volume; down: string | null };
    const { entries, nextToken } = await pageOverFleet<Listed>(
      this.#fleet,
      req,
      async (backend, limit, cursor) => {
        const { volumes, nextCursor } = await backend.volumePage({ limit, cursor });
        if (nextCursor === null) this.#listedToEnd.add(backend);
        return { items: volumes.filter((v) => v.status !== 'deleted').map((volume) => ({ volume, down: null })), nextCursor };
      },
      (agent) => async (backend, limit, cursor) => {
        // Only a backend read to its end holds all it had in the SDK's map: else its volumes would read as gone.
        if (!this.#listedToEnd.has(backend)) throw new CsiError(status.UNAVAILABLE, `the agent of host ${agent.hostId} is not reachable (${agent.url}), and its volumes were never listed here`);
        const { items, nextCursor } = lastSeenPage(agent.agent, backend.name, limit, cursor);
        const why = agent.lastError?.message ?? `the agent at ${agent.url} is ${agent.state}`;
        return { items: items.map((volume) => ({ volume, down: why })), nextCursor };
      },
    );
    const loaded = new Map(entries.flatMap(({ item }) => [...item.volume.snapshots].map((s) => [s.id, s] as const)));
    const listed: { volume: CsiVolume; status: VolumeStatus }[] = [];
    for (const { item, hostId } of entries) {
      const source = item.down === null ? await this.#listedSource(item.volume, hostId, loaded) : null;
      listed.push({ volume: csiVolume(item.volume, hostId, source), status: this.#statusOf(item.volume, hostId, item.down) });
    }
    return { entries: listed, nextToken };
  }

  /** The volume as its agent has it now, with its status; an agent that cannot be reached answers as last seen, abnormal. */
  async controllerGetVolume(req: { volumeId: string }): Promise<{ volume: CsiVolume; status: VolumeStatus }> {
    const id = required(req.volumeId, 'volume_id');
    const ref = parseVolumeHandle(id);
    if (!ref) throw notFound(`volume ${id} does not exist`);
    let volume: Volume | null;
    try {
      volume = await this.#router.volume(ref);
    } catch (err) {
      const why = unreachableWhy(err);
      if (why === null) throw err;
      const agent = this.#fleet.agents.find((a) => a.hostId === ref.hostId);
      const seen = agent ? lastSeen(agent.agent, ref.volumeId) : null;
      if (seen) return { volume: csiVolume(seen, ref.hostId, null), status: this.#statusOf(seen, ref.hostId, why) };
      // Never seen: only what the handle says (capacity 0: unknown, as the specification reads it).
      const volume = { capacityBytes: 0, volumeId: id, volumeContext: { backend: ref.backend }, contentSource: null, accessibleTopology: [topologyOf(ref.hostId)] };
      return { volume, status: { publishedNodeIds: [], volumeCondition: unreachable(ref.hostId, why) } };
    }
    if (!volume) throw notFound(`volume ${id} does not exist`);
    const source = await this.#listedSource(volume, ref.hostId, new Map());
    return { volume: csiVolume(volume, ref.hostId, source), status: this.#statusOf(volume, ref.hostId, null) };
  }

  #statusOf(volume: Volume, hostId: string, down: string | null): VolumeStatus {
    if (down !== null) return { publishedNodeIds: publishedNodes(volume, hostId), volumeCondition: unreachable(hostId, down) };
    return volumeStatus(volume, hostId, this.#fleet.agentOf(volume).capacity.get(volume.backend.name), this.#thinPoolThreshold);
  }

  /** Where a listed volume came from; a source snapshot not loaded with the page is asked of the volume's own backend. */
  async #listedSource(v: Volume, host: string, loaded: ReadonlyMap<string, Snapshot>): Promise<VolumeContentSource | null> {
    if (v.snapshotId) {
      const fromSnapshot = loaded.get(v.snapshotId) ?? (await v.backend.snapshotsFiltered({ snapshotId: v.snapshotId }))[0];
      return fromSnapshot ? { snapshot: { snapshotId: snapshotIdOf(fromSnapshot, host) } } : null;
    }
    return v.sourceVolId ? { volume: { volumeId: volumeHandle({ hostId: host, backend: v.backend.name, volumeId: v.sourceVolId }) } } : null;
  }

  async getCapacity(req: GetCapacityRequest) {
    const params = classParameters(req.parameters);
    const host = req.accessibleTopology && Object.keys(req.accessibleTopology.segments).length ? hostOfTopology(req.accessibleTopology) : null;
    const rooms = (await this.#router.statsOn(host, params.driver))
      .filter((c) => !params.backend || c.backend.name === params.backend)
      .map((c) => Math.floor(roomGbOf(c.stats)) * GIB);
    return {
      availableCapacity: rooms.reduce((a, b) => a + b, 0),
      // One volume lives on one backend: the largest is the biggest a create can get.
      maximumVolumeSize: { value: Math.max(0, ...rooms) },
      minimumVolumeSize: { value: GIB },
    };
  }

  createSnapshot(req: CreateSnapshotRequest) {
    return this.#snapshots.createSnapshot(req);
  }

  deleteSnapshot(req: { snapshotId: string }) {
    return this.#snapshots.deleteSnapshot(req);
  }

  listSnapshots(req: ListSnapshotsRequest) {
    return this.#snapshots.listSnapshots(req);
  }

  async controllerExpandVolume(req: ControllerExpandVolumeRequest) {
    const id = required(req.volumeId, 'volume_id');
    if (!req.capacityRange) throw invalid('capacity_range is required');
    const range = req.capacityRange;
    return this.#inFlight.run([`volume:${id}`], async () => {
      const ref = parseVolumeHandle(id);
      const volume = ref && (await this.#router.volume(ref));
      if (!ref || !volume) throw notFound(`volume ${id} does not exist`);
      const size = sizeInGiB(range);
      // Volumes only grow; a smaller ask is already met (the spec's idempotent repeat).
      if (size > volume.size) await volume.extend(size);
      return { capacityBytes: volume.size * GIB, nodeExpansionRequired: !req.volumeCapability?.block };
    });
  }
}
