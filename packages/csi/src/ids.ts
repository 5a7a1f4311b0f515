// Ids carry where the resource lives, so every call is routed without a lookup: the host id
// (URI-encoded, so it holds no ':'), the backend name (never has ':') and the Kindling uuids.

export interface VolumeRef {
  hostId: string;
  backend: string;
  volumeId: string;
}

export interface SnapshotRef extends VolumeRef {
  snapshotId: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BACKEND = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const isBackendName = (text: string): boolean => BACKEND.test(text);

export function volumeHandle({ hostId, backend, volumeId }: VolumeRef): string {
  return `${encodeURIComponent(hostId)}:${backend}:${volumeId}`;
}

export function snapshotHandle(ref: SnapshotRef): string {
  return `${volumeHandle(ref)}:${ref.snapshotId}`;
}

/** The host id a handle part encodes; null for text this driver never wrote. */
export function decodeHost(text: string): string | null {
  try {
    const host = decodeURIComponent(text);
    return host && encodeURIComponent(host) === text ? host : null;
  } catch {
    return null;
  }
}

function parts(handle: string, count: number): string[] | null {
  const split = handle.split(':');
  if (split.length !== count) return null;
  const [host, backend, ...uuids] = split as [string, string, ...string[]];
  if (!isBackendName(backend) || !uuids.every((u) => UUID.test(u)) || decodeHost(host) === null) return null;
  return split;
}

/** null for a handle this driver never made: such a volume does not exist. */
export function parseVolumeHandle(handle: string): VolumeRef | null {
  const p = parts(handle, 3);
  if (!p) return null;
  return { hostId: decodeHost(p[0]!)!, backend: p[1]!, volumeId: p[2]! };
}

export function parseSnapshotHandle(handle: string): SnapshotRef | null {
  const p = parts(handle, 4);
  if (!p) return null;
  return { hostId: decodeHost(p[0]!)!, backend: p[1]!, volumeId: p[2]!, snapshotId: p[3]! };
}

/** A group snapshot's handle: its host and the group's uuid (two parts: never a volume's or a snapshot's). */
export interface GroupRef {
  hostId: string;
  groupId: string;
}

export function groupHandle({ hostId, groupId }: GroupRef): string {
  return `${encodeURIComponent(hostId)}:${groupId}`;
}

export function parseGroupHandle(handle: string): GroupRef | null {
  const [host, groupId, ...rest] = handle.split(':');
  const hostId = host === undefined ? null : decodeHost(host);
  if (rest.length > 0 || hostId === null || groupId === undefined || !UUID.test(groupId)) return null;
  return { hostId, groupId };
}
