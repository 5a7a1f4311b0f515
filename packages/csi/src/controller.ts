import { status } from '@grpc/grpc-js';
import { roomGbOf } from '@kindling/sdk';
import { GIB, type Backend, type Fleet, type Snapshot, type Volume } from '@kindling/sdk';
import { fitsRange, requireCapability, sizeInGiB, unsupportedCapability } from './capabilities.js';
import { CsiError, invalid, notFound, required } from './errors.js';
import { parseSnapshotHandle, parseVolumeHandle, volumeHandle } from './ids.js';
import { InFlight } from './locks.js';
import { pageOverFleet } from './listing.js';
import { CSI_SOURCE_KEY, classParameters, hostOfTopology, hostOrder, placeCopy, placeVolume, requisiteHosts, sourceId, sourceRef } from './placement.js';
import { CSI_NAME_KEY } from './plugin.js';
import { csiVolume, snapshotIdOf } from './present.js';
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
] as const;

/** The CSI Controller service over a fleet of agents. Keeps nothing: every answer comes from the agents. */
export class Controller {
  readonly #router: Router;
  readonly #fleet: Fleet;
  readonly #inFlight = new InFlight();
  readonly #snapshots: SnapshotRpcs;

  constructor(fleet: Fleet) {
    this.#fleet = fleet;
    this.#router = new Router(fleet);
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
      const existing = await this.#byName(name, given ? [...new Set([given.hostId, ...(requisite ?? [])])] : requisite);
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
      let volume: Volume;
      if (source && hosts && !hosts.includes(source.hostId)) {
        // A source on another host than the topology allows is copied there, agent to agent (issue 22).
        const backend = await placeCopy(this.#fleet, size, params, hosts);
        volume = await source.make({ ...create, metadata: { ...create.metadata, [CSI_SOURCE_KEY]: sourceId(req.volumeContentSource)! }, backend });
      } else volume = source ? await source.make(create) : await placeVolume(this.#fleet, create, params, hosts);
      return { volume: csiVolume(volume, this.#router.hostOf(volume), req.volumeContentSource) };
    });
  }

  /** The live volume made for this CSI name on `hosts`; a failed earlier attempt is removed so the create can run again. */
  async #byName(name: string, hosts: string[] | null): Promise<Volume | null> {
    const mine = (await this.#router.volumesOn(hosts, name)).filter((v) => v.status !== 'deleted' && v.metadata[CSI_NAME_KEY] === name);
    for (const v of mine) {
      if (v.status === 'creating') throw new CsiError(status.ABORTED, `volume ${name} is still being created`);
      if (v.status === 'error') await v.delete();
    }
    return mine.find((v) => v.status !== 'error') ?? null;
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
      if (volume) await volume.delete();
      return {};
    });
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

  async listVolumes(req: ListRequest) {
    const { entries, nextToken } = await pageOverFleet(this.#fleet, req, async (backend, limit, cursor) => {
      const { volumes, nextCursor } = await backend.volumePage({ limit, cursor });
      return { items: volumes.filter((v) => v.status !== 'deleted'), nextCursor };
    });
    const loaded = new Map(entries.flatMap(({ item }) => [...item.snapshots].map((s) => [s.id, s] as const)));
    const listed: CsiVolume[] = [];
    for (const { item: v, hostId } of entries) listed.push(csiVolume(v, hostId, await this.#listedSource(v, hostId, loaded)));
    return { entries: listed.map((volume) => ({ volume })), nextToken };
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
