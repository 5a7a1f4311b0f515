import { status } from '@grpc/grpc-js';
import { GIB } from '@kindling/sdk';
import { CsiError, invalid } from './errors.js';
import type { CapacityRange, VolumeCapability } from './types.js';

export const FILESYSTEMS = ['ext4', 'xfs'] as const;
export type Filesystem = (typeof FILESYSTEMS)[number];

/** A volume is one host's block device: one node at a time, writer or reader. */
const SINGLE_NODE = new Set(['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'SINGLE_NODE_SINGLE_WRITER']);

/** Why this driver cannot give a volume with this capability, else null. */
export function unsupportedCapability(cap: VolumeCapability): string | null {
  const mode = cap.accessMode?.mode ?? 'UNKNOWN';
  if (!SINGLE_NODE.has(mode)) return `access mode ${mode} is not supported (single-node modes only)`;
  if (cap.block) return null;
  if (!cap.mount) return 'the capability names neither block nor mount';
  const fs = cap.mount.fsType;
  if (fs && !(FILESYSTEMS as readonly string[]).includes(fs)) return `filesystem ${fs} is not supported (ext4 or xfs)`;
  return null;
}

/** INVALID_ARGUMENT for a capability missing or malformed (the spec's rule for required fields). */
export function requireCapability(cap: VolumeCapability | null | undefined): VolumeCapability {
  if (!cap || (!cap.block && !cap.mount)) throw invalid('volume_capability is required (block or mount)');
  if (!cap.accessMode || cap.accessMode.mode === 'UNKNOWN') throw invalid('volume_capability.access_mode is required');
  return cap;
}

export function filesystemOf(cap: VolumeCapability): Filesystem {
  const fs = cap.mount?.fsType || 'ext4';
  return fs as Filesystem;
}

/**
 * Whole GiB covering `required` (1 GiB when unset), OUT_OF_RANGE when `limit` is below that.
 * `minimum`: the smallest acceptable size (a content source's), used when nothing is asked.
 */
export function sizeInGiB(range: CapacityRange | null, minimumGiB = 1): number {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  if (required < 0 || limit < 0) throw invalid('capacity_range must not be negative');
  if (limit && required > limit) throw new CsiError(status.OUT_OF_RANGE, `required_bytes ${required} is above limit_bytes ${limit}`);
  const size = Math.max(Math.ceil(required / GIB), minimumGiB, 1);
  if (limit && size * GIB > limit) {
    throw new CsiError(status.OUT_OF_RANGE, `volumes come in whole GiB: ${size} GiB is above limit_bytes ${limit}`);
  }
  return size;
}

/** A volume of `sizeGiB` fits the range (an existing one, for idempotent creates). */
export function fitsRange(sizeGiB: number, range: CapacityRange | null): boolean {
  const bytes = sizeGiB * GIB;
  return bytes >= (range?.requiredBytes ?? 0) && (!range?.limitBytes || bytes <= range.limitBytes);
}
