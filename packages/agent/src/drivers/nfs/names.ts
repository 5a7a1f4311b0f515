import { createHash, randomBytes } from 'node:crypto';
import { InvalidArgumentError, UUID_PATTERN, UUID_RE } from '@kindling/protocol';

/**
 * Several agents may use one share (one per Kubernetes node is natural). Every temporary name carries
 * its maker's owner tag, from the agent's host id and the backend's name: a restart removes only its
 * own, and reports others' as strays (recovery.md, "Who owns which name").
 */
const OWNER = '[0-9a-f]{12}';
const RANDOM = '[0-9a-f]{16}';
/** `-<owner>-<random>`: whose, and unguessable until it is made. */
const TAGGED = `-(${OWNER})-${RANDOM}`;

export const ownerTag = (hostId: string, backend: string): string =>
  createHash('sha256').update(`${hostId}\0${backend}`).digest('hex').slice(0, 12);

const tagged = (owner: string): string => `-${owner}-${randomBytes(8).toString('hex')}`;

/**
 * Internal snapshots taken to clone a volume, named as cinder names them plus the owner tag (agents
 * before owner tags wrote `tmp-snap-<id>`: still a chain file, but nobody's to remove).
 */
const TEMP_PREFIX = 'tmp-snap-';
const TEMP_SNAPSHOT_ID = `${TEMP_PREFIX}(?:(${OWNER})-)?${UUID_PATTERN}`;
const SNAPSHOT_ID = `(?:${TEMP_PREFIX}(?:${OWNER}-)?)?${UUID_PATTERN}`;
const SNAPSHOT_ID_RE = new RegExp(`^${SNAPSHOT_ID}$`, 'i');
const TEMP_SNAPSHOT_ID_RE = new RegExp(`^${TEMP_SNAPSHOT_ID}$`, 'i');

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
export const partFile = (volumeId: string, owner: string): string => `${volumeFile(volumeId)}.part${tagged(owner)}`;

/** The overlay made when snapshot `snapshotId` was taken: `volume-<id>.<snapshot-id>`. */
export const overlayFile = (volumeId: string, snapshotId: string): string =>
  `${volumeFile(volumeId)}.${checkSnapshotId(snapshotId)}`;

/** The snapshot record, `volume-<id>.info`. */
export const infoFile = (volumeId: string): string => `${volumeFile(volumeId)}.info`;

/** The record being written, renamed over `.info` once flushed. */
export const infoTempFile = (volumeId: string, owner: string): string => `${infoFile(volumeId)}.tmp${tagged(owner)}`;

/** A revert's new overlay, built aside and renamed over the active overlay. */
export const revertFile = (overlay: string, owner: string): string => `${overlay}.revert${tagged(owner)}`;

/**
 * Claims an overlay while no record names it (a snapshot being taken, or being deleted after its
 * record let go of it): only the claim's owner removes such an overlay.
 */
export const claimFile = (overlay: string, owner: string): string => `${overlay}.claim${tagged(owner)}`;

export const probeFile = (owner: string): string => `.kindling-probe${tagged(owner)}`;

export const tempSnapshotId = (volumeId: string, owner: string): string => `${TEMP_PREFIX}${owner}-${checkVolumeId(volumeId)}`;
export const isTempSnapshotId = (id: string): boolean => TEMP_SNAPSHOT_ID_RE.test(id);
/** The owner of a clone's temporary snapshot; null when `id` is not one or names no owner. */
export const tempSnapshotOwner = (id: string): string | null => TEMP_SNAPSHOT_ID_RE.exec(id)?.[1]?.toLowerCase() ?? null;

/** What one name on a share stands for; every name Kindling writes is one of these. */
export type ShareName =
  | { kind: 'base'; volumeId: string }
  | { kind: 'overlay'; volumeId: string; snapshotId: string }
  | { kind: 'info'; volumeId: string }
  | { kind: 'part' | 'info-tmp'; volumeId: string; owner: string }
  | { kind: 'revert' | 'claim'; volumeId: string; snapshotId: string; owner: string }
  | { kind: 'probe'; owner: string };

const NAME_RE = new RegExp(
  `^volume-(${UUID_PATTERN})(?:\\.(info)|\\.(part|info\\.tmp)${TAGGED}|\\.(${SNAPSHOT_ID})(?:\\.(revert|claim)${TAGGED})?)?$`,
  'i',
);
const PROBE_RE = new RegExp(`^\\.kindling-probe${TAGGED}$`);

/** The meaning of a file name on a share, or null when Kindling never writes such a name. */
export function parseName(name: string): ShareName | null {
  const probe = PROBE_RE.exec(name);
  if (probe) return { kind: 'probe', owner: probe[1]! };
  const m = NAME_RE.exec(name);
  if (!m) return null;
  const [, volumeId, info, temp, tempOwner, snapshotId, aside, asideOwner] = m as unknown as (string | undefined)[];
  const id = volumeId!;
  if (info) return { kind: 'info', volumeId: id };
  if (temp) return { kind: temp === 'part' ? 'part' : 'info-tmp', volumeId: id, owner: tempOwner!.toLowerCase() };
  if (snapshotId === undefined) return { kind: 'base', volumeId: id };
  if (aside) return { kind: aside === 'revert' ? 'revert' : 'claim', volumeId: id, snapshotId, owner: asideOwner!.toLowerCase() };
  return { kind: 'overlay', volumeId: id, snapshotId };
}

/**
 * True when `name` is one of this volume's chain files (base or an overlay). Names read back from a
 * `.info` record or a qcow2 header are checked with it before use, as cinder checks backing files.
 */
export function isChainFile(volumeId: string, name: string): boolean {
  const parsed = parseName(name);
  return (parsed?.kind === 'base' || parsed?.kind === 'overlay') && parsed.volumeId === volumeId;
}
