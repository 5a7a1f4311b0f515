import { InvalidArgumentError } from '@kindling/protocol';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const UUID_RE = new RegExp(`^${UUID}$`, 'i');
/** Internal snapshots taken to clone a volume, named as cinder names them. */
const TEMP_PREFIX = 'tmp-snap-';
const SNAPSHOT_ID_RE = new RegExp(`^(${TEMP_PREFIX})?${UUID}$`, 'i');
const VOLUME_FILE_RE = new RegExp(`^volume-(${UUID})$`, 'i');

// Ids reach file names; a check here keeps a bad id from ever naming a path outside the share.
function checkVolumeId(id: string): string {
  if (!UUID_RE.test(id)) throw new InvalidArgumentError(`not a volume id: ${JSON.stringify(id)}`, { id });
  return id;
}

function checkSnapshotId(id: string): string {
  if (!SNAPSHOT_ID_RE.test(id)) throw new InvalidArgumentError(`not a snapshot id: ${JSON.stringify(id)}`, { id });
  return id;
}

/** The volume's base file, `volume-<id>`, as cinder's volume_name_template. */
export const volumeFile = (volumeId: string): string => `volume-${checkVolumeId(volumeId)}`;

/** The overlay made when snapshot `snapshotId` was taken: `volume-<id>.<snapshot-id>`. */
export const overlayFile = (volumeId: string, snapshotId: string): string =>
  `${volumeFile(volumeId)}.${checkSnapshotId(snapshotId)}`;

/** The snapshot record, `volume-<id>.info`. */
export const infoFile = (volumeId: string): string => `${volumeFile(volumeId)}.info`;

export const tempSnapshotId = (volumeId: string): string => `${TEMP_PREFIX}${checkVolumeId(volumeId)}`;
export const isTempSnapshotId = (id: string): boolean => id.startsWith(TEMP_PREFIX);

/** The volume id a base file name stands for, else null. */
export function volumeIdOfFile(name: string): string | null {
  return VOLUME_FILE_RE.exec(name)?.[1] ?? null;
}

/**
 * True when `name` is one of this volume's chain files (base or an overlay). Names read back from a
 * `.info` record or a qcow2 header are checked with it before use, as cinder checks backing files.
 */
export function isChainFile(volumeId: string, name: string): boolean {
  const base = volumeFile(volumeId);
  if (name === base) return true;
  return name.startsWith(`${base}.`) && SNAPSHOT_ID_RE.test(name.slice(base.length + 1));
}
