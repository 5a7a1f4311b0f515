import { InvalidArgumentError, UUID_PATTERN, UUID_RE } from '@kindling/protocol';

/** Internal snapshots taken to clone a volume, named as cinder names them. */
const TEMP_PREFIX = 'tmp-snap-';
const SNAPSHOT_ID = `(?:${TEMP_PREFIX})?${UUID_PATTERN}`;
const SNAPSHOT_ID_RE = new RegExp(`^${SNAPSHOT_ID}$`, 'i');
const HEX8 = '[0-9a-f]{8}';

// Ids reach file names; a check here keeps a bad id from ever naming a path outside the share.
function checkVolumeId(id: string): string {
  if (!UUID_RE.test(id)) throw new InvalidArgumentError(`not a volume id: ${JSON.stringify(id)}`, { id });
  return id;
}

function checkSnapshotId(id: string): string {
  if (!SNAPSHOT_ID_RE.test(id)) throw new InvalidArgumentError(`not a snapshot id: ${JSON.stringify(id)}`, { id });
  return id;
}

/** The volume's base file, `volume-<id>`, as cinder's volume_name_template. Its presence means "complete". */
export const volumeFile = (volumeId: string): string => `volume-${checkVolumeId(volumeId)}`;

/** A volume being made or filled: renamed to volume-<id> only once it is complete and flushed. */
export const partFile = (volumeId: string): string => `${volumeFile(volumeId)}.part`;

/** The overlay made when snapshot `snapshotId` was taken: `volume-<id>.<snapshot-id>`. */
export const overlayFile = (volumeId: string, snapshotId: string): string =>
  `${volumeFile(volumeId)}.${checkSnapshotId(snapshotId)}`;

/** The snapshot record, `volume-<id>.info`. */
export const infoFile = (volumeId: string): string => `${volumeFile(volumeId)}.info`;

/** A revert's new overlay, built aside and renamed over the active overlay. */
export const revertFile = (overlay: string): string => `${overlay}.revert`;

export const tempSnapshotId = (volumeId: string): string => `${TEMP_PREFIX}${checkVolumeId(volumeId)}`;
export const isTempSnapshotId = (id: string): boolean => id.startsWith(TEMP_PREFIX);

/** What one name on a share stands for; every name Kindling writes is one of these. */
export type ShareName =
  | { kind: 'base'; volumeId: string }
  | { kind: 'part'; volumeId: string }
  | { kind: 'info'; volumeId: string }
  | { kind: 'info-tmp'; volumeId: string }
  | { kind: 'overlay'; volumeId: string; snapshotId: string }
  | { kind: 'revert'; volumeId: string; snapshotId: string }
  | { kind: 'probe' };

const NAME_RE = new RegExp(
  `^volume-(${UUID_PATTERN})(?:\\.(part|info|info\\.tmp-${HEX8})|\\.(${SNAPSHOT_ID})(\\.revert)?)?$`,
  'i',
);
const PROBE_RE = new RegExp(`^\\.kindling-probe-${HEX8}$`);

/** The meaning of a file name on a share, or null when Kindling never writes such a name. */
export function parseName(name: string): ShareName | null {
  if (PROBE_RE.test(name)) return { kind: 'probe' };
  const m = NAME_RE.exec(name);
  if (!m) return null;
  const volumeId = m[1]!;
  const [, , suffix, snapshotId, revert] = m;
  if (snapshotId !== undefined) return { kind: revert ? 'revert' : 'overlay', volumeId, snapshotId };
  if (suffix === undefined) return { kind: 'base', volumeId };
  if (suffix === 'part' || suffix === 'info') return { kind: suffix, volumeId };
  return { kind: 'info-tmp', volumeId };
}

/**
 * True when `name` is one of this volume's chain files (base or an overlay). Names read back from a
 * `.info` record or a qcow2 header are checked with it before use, as cinder checks backing files.
 */
export function isChainFile(volumeId: string, name: string): boolean {
  const parsed = parseName(name);
  return (parsed?.kind === 'base' || parsed?.kind === 'overlay') && parsed.volumeId === volumeId;
}
