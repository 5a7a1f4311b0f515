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
}

/** How many found items a readiness warning names before it says "and N more". */
const NAMED = 5;

/** The readiness warnings for what a backend's storage holds besides its volumes (none when all is well). */
export function findingWarnings(found: Findings): string[] {
  const named = (items: string[]) =>
    items.slice(0, NAMED).join(', ') + (items.length > NAMED ? ` and ${items.length - NAMED} more` : '');
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
