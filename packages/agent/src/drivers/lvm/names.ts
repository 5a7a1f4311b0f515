import { InvalidArgumentError, UUID_RE } from '@kindling/protocol';

// Ids become LV names and tags in argv; checking them keeps anything odd from reaching lvm2.
function checkId(id: string, what: string): string {
  if (!UUID_RE.test(id)) throw new InvalidArgumentError(`not a ${what} id: ${JSON.stringify(id)}`, { id });
  return id;
}

/** `volume-<id>`, cinder's volume_name_template. */
export const volumeLv = (volumeId: string): string => `volume-${checkId(volumeId, 'volume')}`;

/** `_snapshot-<id>`: LVM reserves names starting with `snapshot`, so cinder prefixes an underscore. */
export const snapshotLv = (snapshotId: string): string => `_snapshot-${checkId(snapshotId, 'snapshot')}`;

/** The short-lived snapshot a thick clone copies from, as cinder's `clone-snap-<id>` (id: the new volume). */
export const cloneSnapshotLv = (volumeId: string): string => `clone-snap-${checkId(volumeId, 'volume')}`;

/** A volume being made or filled; renamed to `volume-<id>` only once complete, flushed and full size. */
export const partialLv = (volumeId: string): string => `partial-${checkId(volumeId, 'volume')}`;

/** A thin revert's new volume, built beside the old one and renamed over it. */
export const revertLv = (volumeId: string): string => `revert-${checkId(volumeId, 'volume')}`;

/** A removed volume or snapshot renamed aside (`clear-volume-<id>`) to be zeroed outside the VG queue. */
export const clearLv = (lv: string): string => `clear-${lv}`;

export type LvRole = 'volume' | 'snapshot' | 'partial' | 'revert' | 'clone-snap' | 'clear-volume' | 'clear-snapshot';

const ROLES: [RegExp, LvRole][] = [
  [/^volume-(.+)$/, 'volume'],
  [/^_snapshot-(.+)$/, 'snapshot'],
  [/^partial-(.+)$/, 'partial'],
  [/^revert-(.+)$/, 'revert'],
  [/^clone-snap-(.+)$/, 'clone-snap'],
  [/^clear-volume-(.+)$/, 'clear-volume'],
  [/^clear-_snapshot-(.+)$/, 'clear-snapshot'],
];

/** What a name of Kindling's says an LV is, and the id in it; null for any other name. */
export function parseLvName(name: string): { role: LvRole; id: string } | null {
  for (const [re, role] of ROLES) {
    const id = re.exec(name)?.[1];
    if (id !== undefined && UUID_RE.test(id)) return { role, id };
  }
  return null;
}

export const TAG_ID = 'kindling_id_';
export const TAG_KIND = 'kindling_kind_';
export const TAG_VOLUME_OF = 'kindling_vol_';

/** Tags that let scan() rebuild the index from LVM alone. */
export const volumeTags = (volumeId: string): string[] => [`${TAG_ID}${checkId(volumeId, 'volume')}`, `${TAG_KIND}volume`];

/** A clone's temporary snapshot, tagged with the new volume's id so that scan can prove it is Kindling's. */
export const cloneSnapshotTags = (volumeId: string): string[] => [`${TAG_ID}${checkId(volumeId, 'volume')}`, `${TAG_KIND}clone-snap`];

export const snapshotTags = (snapshotId: string, volumeId: string): string[] => [
  `${TAG_ID}${checkId(snapshotId, 'snapshot')}`,
  `${TAG_KIND}snapshot`,
  `${TAG_VOLUME_OF}${checkId(volumeId, 'volume')}`,
];

/** The default thin pool name, as cinder's `<vg>-pool`. */
export const defaultThinPool = (vg: string): string => `${vg}-pool`;

export const isUuid = (s: string): boolean => UUID_RE.test(s);

export const TAG_OWNER = 'kindling_owner_';

/**
 * Which agent (its host id) and backend made an LV: `kindling_owner_<host>/<backend>`. Two backends
 * or agents on one VG each take away only the leftovers carrying their own (lvm2 tags allow
 * `A-Za-z0-9_+.-/=!:&#`; anything else in a host id becomes `_`).
 */
export const ownerTag = (hostId: string, backend: string): string =>
  `${TAG_OWNER}${hostId.replace(/[^A-Za-z0-9_+.=!:&#-]/g, '_')}/${backend}`;

/** On a volume being reverted (thick): where its snapshot's COW store lay before the merge freed it. */
export const TAG_COW = 'kindling_cow_';

/** The device-mapper name lvm2 gives `vg/lv`: each `-` in either name doubled, the two joined by `-`. */
export function dmName(vg: string, lv: string): string {
  return `${vg.replaceAll('-', '--')}-${lv.replaceAll('-', '--')}`;
}
