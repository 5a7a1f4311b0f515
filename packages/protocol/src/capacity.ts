import { ConflictError } from './errors.js';
import { GIB } from './util.js';
import type { BackendStats } from './records.js';

/** What the room rule reads, every amount in one unit (bytes or GiB). */
export interface CapacityFigures {
  total: number;
  free: number;
  /** What the volumes there may grow to (their virtual sizes); read for thin storage only. */
  provisioned: number;
  thin: boolean;
  maxOverSubscriptionRatio: number;
  /** Share of `total` never handed out. */
  reservedPercentage: number;
}

/**
 * The one capacity rule, used by the agent to admit a volume, by the SDK's placement and by CSI's
 * GetCapacity: how much one new volume may take. The reserve (`reservedPercentage` of the total) is
 * never handed out, and nothing is once free space has fallen into it; thin storage may promise
 * `total × maxOverSubscriptionRatio` less what is provisioned and the reserve; thick storage only what
 * is free beyond the reserve. 100 thick, 15 free, 10 % reserved: 5.
 */
export function roomFor(f: CapacityFigures): number {
  if (f.total <= 0) return 0;
  const reserved = (f.total * f.reservedPercentage) / 100;
  if (f.free <= reserved) return 0;
  const room = f.thin ? f.total * f.maxOverSubscriptionRatio - f.provisioned - reserved : f.free - reserved;
  return Math.max(0, room);
}

/**
 * GiB one new volume may take on a backend: `maxVolumeSizeGb` when the agent reports it (a backend
 * over several shares, where a volume must fit on one), else the rule over the backend's figures.
 */
export function roomGbOf(stats: BackendStats): number {
  if (stats.maxVolumeSizeGb !== undefined) return stats.maxVolumeSizeGb;
  return roomFor({
    total: stats.totalCapacityGb,
    free: stats.freeCapacityGb,
    provisioned: stats.provisionedCapacityGb,
    thin: stats.thinProvisioningSupport,
    maxOverSubscriptionRatio: stats.maxOverSubscriptionRatio,
    reservedPercentage: stats.reservedPercentage,
  });
}

/** A room in bytes as GiB for `maxVolumeSizeGb`: rounded down (to 0.01), so it never reads bigger than it is. */
export const roomGbFromBytes = (bytes: number): number => Math.floor((bytes / GIB) * 100) / 100;

/**
 * The refusal of what does not fit: exact bytes needed and free, since GiB figures round (1020 MiB free
 * is no room for 1 GiB, and must not read as "1 GiB free"); freeGb is rounded down for the same reason.
 */
export function noRoomError(what: string, neededBytes: number, freeBytes: number): ConflictError {
  const free = Math.max(0, Math.floor(freeBytes));
  return new ConflictError(`${what}: needs ${neededBytes} bytes, ${free} bytes free`, {
    requestedGb: neededBytes / GIB,
    freeGb: roomGbFromBytes(free),
    neededBytes,
    freeBytes: free,
  });
}
