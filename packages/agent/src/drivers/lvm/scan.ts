import { GIB } from '@kindling/protocol';
import type { Leftover, ScanResult } from '../driver.js';
import { TAG_ID, TAG_OWNER, TAG_VOLUME_OF, isUuid, parseLvName } from './names.js';
import type { LvInfo, Report } from './report.js';
import { lvIsThin } from './vg-cache.js';

const tagValue = (lv: LvInfo, prefix: string): string | undefined =>
  lv.tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);

/**
 * What one VG report holds for Kindling. An LV is Kindling's when its name is one of Kindling's and it
 * carries the id tag that name implies (a snapshot may also inherit its origin's tags: the id in the
 * name decides). Only final names are volumes and snapshots; temporary names are leftovers; an LV that
 * looks like Kindling's but cannot be proven so is a stray. Other LVs (the thin pool, foreign LVs) are
 * not Kindling's business. A leftover is this backend's only when it carries `owner` (its owner tag):
 * another backend's or agent's on the same VG, or one from before owner tags, is reported, not taken.
 */
export function scanReport(report: Readonly<Report>, owner: string): ScanResult {
  const vg = report.vg.name;
  const result: ScanResult = { volumes: [], snapshots: [], leftovers: [], strays: [] };
  const leftover = (kind: Leftover['kind'], id: string, lv: LvInfo): void => {
    const where = `${vg}/${lv.name}`;
    if (lv.tags.includes(owner)) result.leftovers.push({ kind, id, where });
    else {
      const other = lv.tags.find((t) => t.startsWith(TAG_OWNER));
      const whose = other ? `of ${other.slice(TAG_OWNER.length)}` : 'without an owner tag';
      result.strays.push({ where, reason: `a leftover ${whose}, not of this backend: left to its owner` });
    }
  };
  for (const lv of report.lvs.values()) {
    const where = `${vg}/${lv.name}`;
    const named = parseLvName(lv.name);
    if (!named) {
      if (lv.tags.some((t) => t.startsWith(TAG_ID))) result.strays.push({ where, reason: "tagged as Kindling's, but not named as any of its LVs" });
      continue;
    }
    const { role, id } = named;
    if (!lv.tags.includes(`${TAG_ID}${id}`)) {
      result.strays.push({ where, reason: `named as Kindling's, but without its tag ${TAG_ID}${id}` });
      continue;
    }
    const location = { vg, lv: lv.name, thin: lvIsThin(lv) };
    switch (role) {
      case 'volume':
        result.volumes.push({ id, size: Math.ceil(lv.size / GIB), location });
        break;
      case 'snapshot': {
        const volumeId = tagValue(lv, TAG_VOLUME_OF);
        if (volumeId && isUuid(volumeId)) result.snapshots.push({ id, volumeId, location });
        else result.strays.push({ where, reason: `a snapshot without a valid ${TAG_VOLUME_OF} tag` });
        break;
      }
      case 'partial':
      // A thin revert's new LV: removeLeftover publishes it when the old volume is already gone.
      case 'revert':
        leftover('partial-volume', id, lv);
        break;
      case 'clone-snap': {
        // It sits on the source's chain: the source is the resource to lock while it goes.
        const source = parseLvName(lv.origin);
        leftover('temp-snapshot', source?.role === 'volume' ? source.id : id, lv);
        break;
      }
      case 'clear-volume':
      case 'clear-snapshot':
        leftover('pending-clear', id, lv);
        break;
    }
  }
  return result;
}
