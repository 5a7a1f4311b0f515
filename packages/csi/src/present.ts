import { GIB, type Snapshot, type SnapshotRecord, type Volume } from '@kindling/sdk';
import { snapshotHandle, volumeHandle } from './ids.js';
import { TOPOLOGY_KEY } from './plugin.js';
import type { CsiSnapshot, CsiVolume, Timestamp, Topology, VolumeContentSource } from './types.js';

// Kindling objects as CSI messages.

export function topologyOf(hostId: string): Topology {
  return { segments: { [TOPOLOGY_KEY]: hostId } };
}

export function timestamp(iso: string): Timestamp {
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

export function volumeIdOf(volume: Volume, hostId: string): string {
  return volumeHandle({ hostId, backend: volume.backend.name, volumeId: volume.id });
}

export function snapshotIdOf(snapshot: Snapshot, hostId: string): string {
  return snapshotHandle({ hostId, backend: snapshot.volume.backend.name, volumeId: snapshot.volume.id, snapshotId: snapshot.id });
}

export function csiVolume(volume: Volume, hostId: string, contentSource: VolumeContentSource | null): CsiVolume {
  return {
    capacityBytes: volume.size * GIB,
    volumeId: volumeIdOf(volume, hostId),
    volumeContext: { backend: volume.backend.name, driver: volume.backend.driver ?? '' },
    contentSource,
    accessibleTopology: [topologyOf(hostId)],
  };
}

/** A Snapshot object, or an agent's record of one (a listing page presents records without loading their volumes). */
export function csiSnapshot(snapshot: Snapshot | SnapshotRecord, hostId: string): CsiSnapshot {
  const volume = 'volume' in snapshot ? { backend: snapshot.volume.backend.name, volumeId: snapshot.volume.id } : { backend: snapshot.backend, volumeId: snapshot.volumeId };
  return {
    sizeBytes: snapshot.volumeSize * GIB,
    snapshotId: snapshotHandle({ hostId, ...volume, snapshotId: snapshot.id }),
    sourceVolumeId: volumeHandle({ hostId, ...volume }),
    creationTime: timestamp(snapshot.createdAt),
    readyToUse: snapshot.status === 'available',
  };
}
