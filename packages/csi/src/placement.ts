import { status } from '@grpc/grpc-js';
import { ConflictError, type Backend, type DriverName, type Fleet, type Volume } from '@kindling/sdk';
import { CsiError, invalid, notFound } from './errors.js';
import { parseSnapshotHandle, parseVolumeHandle } from './ids.js';
import { TOPOLOGY_KEY } from './plugin.js';
import type { Topology, VolumeContentSource } from './types.js';

/** What a StorageClass may say; the CO's own `csi.storage.k8s.io/` keys are passed and ignored. */
export interface ClassParameters {
  backend?: string;
  driver?: DriverName;
}

export function classParameters(parameters: Record<string, string>): ClassParameters {
  const out: ClassParameters = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (key.startsWith('csi.storage.k8s.io/')) continue;
    if (key === 'backend') out.backend = value;
    else if (key === 'driver') {
      if (value !== 'lvm' && value !== 'nfs') throw invalid(`parameter driver must be lvm or nfs, not ${value}`);
      out.driver = value;
    } else throw invalid(`unknown parameter ${key} (known: backend, driver)`);
  }
  return out;
}

/** The host a topology segment names, INVALID_ARGUMENT for one without this driver's key. */
export function hostOfTopology(topology: Topology): string {
  const host = topology.segments[TOPOLOGY_KEY];
  if (!host) throw invalid(`a topology segment lacks ${TOPOLOGY_KEY}`);
  return host;
}

/** Preferred hosts first, in their order, then the rest of the requisite ones; null: anywhere. */
export function hostOrder(requirements: { requisite: Topology[]; preferred: Topology[] } | null): string[] | null {
  if (!requirements || (!requirements.requisite.length && !requirements.preferred.length)) return null;
  const hosts = [...requirements.preferred, ...requirements.requisite].map(hostOfTopology);
  return [...new Set(hosts)];
}

/** The requisite hosts, which bound where a volume can be; null: anywhere. */
export function requisiteHosts(requirements: { requisite: Topology[] } | null): string[] | null {
  return requirements?.requisite.length ? [...new Set(requirements.requisite.map(hostOfTopology))] : null;
}

/** What a content source names, read from its handle alone (no agent asked); NOT_FOUND for a handle never given out. */
export function sourceRef(source: VolumeContentSource | null): { hostId: string; snapshotId: string | null; volumeId: string | null } | null {
  if (source?.snapshot) {
    const ref = parseSnapshotHandle(source.snapshot.snapshotId);
    if (!ref) throw notFound(`snapshot ${source.snapshot.snapshotId} does not exist`);
    return { hostId: ref.hostId, snapshotId: ref.snapshotId, volumeId: null };
  }
  if (source?.volume) {
    const ref = parseVolumeHandle(source.volume.volumeId);
    if (!ref) throw notFound(`volume ${source.volume.volumeId} does not exist`);
    return { hostId: ref.hostId, snapshotId: null, volumeId: ref.volumeId };
  }
  return null;
}

export interface NewVolume {
  size: number;
  name: string;
  metadata: Record<string, string>;
}

/**
 * Creates a volume where the topology allows: the hosts in `hosts` order, on each the backend with
 * most room; a backend that refuses for space passes to the next. The fleet's placement decides from
 * the capacity the agents pushed, so no agent is asked for stats per create.
 */
export async function placeVolume(fleet: Fleet, create: NewVolume, params: ClassParameters, hosts: string[] | null): Promise<Volume> {
  return exhausted(() => fleet.createVolume({ ...create, driver: params.driver, backend: params.backend, ...(hosts ? { hosts } : {}) }));
}

/** The backend a copy of `size` GiB goes to on `hosts` (in their order), by the same rule as placeVolume. */
export async function placeCopy(fleet: Fleet, size: number, params: ClassParameters, hosts: string[]): Promise<Backend> {
  return (await exhausted(() => fleet.place({ size, driver: params.driver, backend: params.backend, hosts }))).backend;
}

async function exhausted<T>(place: () => Promise<T>): Promise<T> {
  try {
    return await place();
  } catch (err) {
    // The fleet's "no backend has room" (its details name the size asked): the spec's RESOURCE_EXHAUSTED.
    if (err instanceof ConflictError && err.details.requestedGb !== undefined) throw new CsiError(status.RESOURCE_EXHAUSTED, err.message);
    throw err;
  }
}

/** On a volume copied from a content source on another host: that source's CSI id, so a retry knows it. */
export const CSI_SOURCE_KEY = 'csi.kindling.io/source';

/** The CSI id of a content source (what CSI_SOURCE_KEY holds). */
export const sourceId = (source: VolumeContentSource | null): string | null => source?.snapshot?.snapshotId ?? source?.volume?.volumeId ?? null;
