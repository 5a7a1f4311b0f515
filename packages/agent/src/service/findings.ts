import type { Leftover, Stray } from '../drivers/driver.js';

/**
 * What a scan found that is neither a volume nor a snapshot, kept for /readyz and the metrics so that
 * no request does storage work. Leftovers are those recovery could not remove at start (only then is no
 * operation running, so only then are they provably leftovers); strays come from the latest scan.
 */
export interface Findings {
  leftovers: Leftover[];
  strays: Stray[];
  /** The latest scan failed: what it could have found is unknown. */
  scanError?: string;
  /** Of the latest comparison of storage with the index (the check after ready, or recovery before it). */
  missingFromIndex?: number;
  missingFromStorage?: number;
}

/** `max` of the items, then "and N more": a warning or log line stays one line whatever storage holds. */
export const named = (items: string[], max = 5): string =>
  items.slice(0, max).join(', ') + (items.length > max ? ` and ${items.length - max} more` : '');

/** The readiness warnings for what a backend's storage holds besides its volumes (none when all is well). */
export function findingWarnings(found: Findings): string[] {
  const warnings: string[] = [];
  if (found.scanError !== undefined) warnings.push(`the last scan of storage failed: ${found.scanError}`);
  if (found.leftovers.length > 0) {
    warnings.push(
      `${found.leftovers.length} leftover(s) of interrupted operations could not be removed at start: ` +
        named(found.leftovers.map((l) => l.where)),
    );
  }
  if (found.strays.length > 0) {
    warnings.push(
      `${found.strays.length} item(s) on storage that are not Kindling's (left alone): ` +
        named(found.strays.map((s) => `${s.where} (${s.reason})`)),
    );
  }
  return warnings;
}
