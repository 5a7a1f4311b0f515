import type { LvmBackendConfig } from '../../config.js';
import type { DriverStats } from '../driver.js';
import type { Report } from './report.js';
import { roomGbFromBytes } from '@kindling/protocol';
import { toGb, type VgCache } from './vg-cache.js';

const DRIVER_VERSION = '1.0.0';

/** cinder's LVM stats from one report: the VG's figures when thick, the pool's when thin. */
export function lvmStats(report: Readonly<Report>, cache: VgCache, thin: boolean, config: LvmBackendConfig): DriverStats {
  const { vg } = report;
  const pool = report.lvs.get(cache.pool);
  const base = {
    vendorName: 'Open Source',
    driverVersion: DRIVER_VERSION,
    storageProtocol: 'iSCSI',
    thinProvisioningSupport: thin,
    thickProvisioningSupport: !thin,
    maxOverSubscriptionRatio: config.maxOverSubscriptionRatio,
    reservedPercentage: config.reservedPercentage,
    // From bytes: the GiB figures above are rounded, and the rule over them could overstate the room.
    maxVolumeSizeGb: roomGbFromBytes(cache.roomBytes(thin)),
  };
  const extra: Record<string, number> = { vgMdaFreeBytes: vg.mdaFree, vgMdaSizeBytes: vg.mdaSize };
  if (thin && pool) {
    // cinder's thin figures: the pool's size, its unused data share, and the virtual sizes in it.
    const dataPercent = pool.dataPercent ?? 0;
    extra.thinPoolDataPercent = dataPercent;
    extra.thinPoolMetadataPercent = pool.metadataPercent ?? 0;
    return {
      ...base,
      totalCapacityGb: toGb(pool.size),
      freeCapacityGb: toGb(pool.size * (1 - dataPercent / 100)),
      provisionedCapacityGb: toGb(cache.thinProvisioned()),
      extra,
    };
  }
  return {
    ...base,
    totalCapacityGb: toGb(vg.size),
    freeCapacityGb: toGb(vg.free),
    provisionedCapacityGb: toGb(vg.size - vg.free),
    extra,
  };
}
