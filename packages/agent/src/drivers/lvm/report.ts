import { BackendError } from '@kindling/protocol';

/** The VG as one report shows it; sizes in bytes. */
export interface VgInfo {
  name: string;
  size: number;
  free: number;
  extentSize: number;
  lvCount: number;
  /** Free space in the metadata area: LVM stalls once it is full (about 1,400 LVs with the 1 MiB default). */
  mdaFree: number;
  mdaSize: number;
}

export interface LvInfo {
  name: string;
  size: number;
  tags: string[];
  /** lv_attr, e.g. `-wi-a-----`; [0] is the type: o origin, s snapshot, t thin pool, V thin volume. */
  attr: string;
  origin: string;
  poolLv: string;
  dataPercent: number | null;
  metadataPercent: number | null;
}

export interface Report {
  vg: VgInfo;
  /** Visible LVs by name (hidden ones such as `[pool_tdata]` are left out). */
  lvs: Map<string, LvInfo>;
}

export const VG_FIELDS = ['vg_name', 'vg_size', 'vg_free', 'vg_extent_size', 'lv_count', 'vg_mda_free', 'vg_mda_size'];
export const LV_FIELDS = [
  'lv_name',
  'lv_size',
  'lv_tags',
  'lv_attr',
  'origin',
  'pool_lv',
  'data_percent',
  'metadata_percent',
];

type Row = Record<string, string>;

function malformed(why: string): BackendError {
  return new BackendError(`unexpected lvm report: ${why}`);
}

function bytes(row: Row, field: string): number {
  const n = Number(row[field]);
  if (row[field] === undefined || row[field] === '' || !Number.isFinite(n)) throw malformed(`${field}=${row[field]}`);
  return n;
}

function percent(row: Row, field: string): number | null {
  const s = row[field];
  if (s === undefined || s === '') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

function rows(section: unknown, name: string): Row[] {
  if (!Array.isArray(section)) throw malformed(`no ${name} section`);
  return section as Row[];
}

export function parseLv(row: Row): LvInfo {
  return {
    name: row.lv_name ?? '',
    size: bytes(row, 'lv_size'),
    tags: (row.lv_tags ?? '').split(',').filter(Boolean),
    attr: row.lv_attr ?? '',
    origin: row.origin ?? '',
    poolLv: row.pool_lv ?? '',
    dataPercent: percent(row, 'data_percent'),
    metadataPercent: percent(row, 'metadata_percent'),
  };
}

/** The `report` array of lvm2's JSON output. */
function reportEntries(stdout: string): Record<string, unknown>[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw malformed('not JSON');
  }
  const reports = (doc as { report?: unknown }).report;
  if (!Array.isArray(reports)) throw malformed('no report array');
  return reports as Record<string, unknown>[];
}

/** Parses `lvm fullreport --reportformat json --units b --nosuffix` output for one VG. */
export function parseFullReport(stdout: string, vgName: string): Report {
  for (const entry of reportEntries(stdout)) {
    const vgRow = rows(entry.vg, 'vg').find((r) => r.vg_name === vgName);
    if (!vgRow) continue;
    const lvs = new Map<string, LvInfo>();
    for (const row of rows(entry.lv ?? [], 'lv')) {
      const lv = parseLv(row);
      if (lv.name && !lv.name.startsWith('[')) lvs.set(lv.name, lv);
    }
    return {
      vg: {
        name: vgName,
        size: bytes(vgRow, 'vg_size'),
        free: bytes(vgRow, 'vg_free'),
        extentSize: bytes(vgRow, 'vg_extent_size'),
        lvCount: bytes(vgRow, 'lv_count'),
        mdaFree: bytes(vgRow, 'vg_mda_free'),
        mdaSize: bytes(vgRow, 'vg_mda_size'),
      },
      lvs,
    };
  }
  throw new BackendError(`volume group ${vgName} not found in the lvm report`);
}

/** Free segments of `vg`'s PVs from `pvs --segments --reportformat json -o pv_name,vg_name,pvseg_start,pvseg_size,lv_name`. */
export function parseFreeRanges(stdout: string, vg: string): { pv: string; first: number; last: number }[] {
  return reportEntries(stdout)
    .flatMap((entry) => rows(entry.pvseg, 'pvseg'))
    .filter((r) => r.vg_name === vg && !r.lv_name)
    .map((r) => ({ pv: r.pv_name ?? '', first: bytes(r, 'pvseg_start'), last: bytes(r, 'pvseg_start') + bytes(r, 'pvseg_size') - 1 }));
}

/** Parses `lvs --reportformat json --units b --nosuffix` output (one LV). */
export function parseLvs(stdout: string): LvInfo[] {
  return reportEntries(stdout).flatMap((entry) => rows(entry.lv, 'lv').map(parseLv));
}
