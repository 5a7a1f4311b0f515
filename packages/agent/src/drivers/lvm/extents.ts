import { BackendError } from '@kindling/protocol';

/** Physical extents `first`..`last` (inclusive) of one PV, as lvm2 writes them: `/dev/sdb:256-511`. */
export interface PeRange {
  pv: string;
  first: number;
  last: number;
}

export const rangeArg = (r: PeRange): string => `${r.pv}:${r.first}-${r.last}`;

export function parseRange(s: string): PeRange {
  const m = /^(\/[^:]+):(\d+)-(\d+)$/.exec(s);
  if (!m) throw new BackendError(`unexpected PE range from lvm2: ${JSON.stringify(s)}`);
  return { pv: m[1]!, first: Number(m[2]), last: Number(m[3]) };
}

export const extentsOf = (ranges: PeRange[]): number => ranges.reduce((n, r) => n + r.last - r.first + 1, 0);

/** `free` without any extent of `taken`: what an allocation may use. */
export function without(free: PeRange[], taken: PeRange[]): PeRange[] {
  let left = free;
  for (const t of taken) {
    left = left.flatMap((f) => {
      if (f.pv !== t.pv || t.last < f.first || t.first > f.last) return [f];
      const parts: PeRange[] = [];
      if (f.first < t.first) parts.push({ pv: f.pv, first: f.first, last: t.first - 1 });
      if (t.last < f.last) parts.push({ pv: f.pv, first: t.last + 1, last: f.last });
      return parts;
    });
  }
  return left;
}
