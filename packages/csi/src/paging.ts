import { status } from '@grpc/grpc-js';
import { CsiError, invalid } from './errors.js';

/**
 * A page of entries sorted by key. The token is the last key handed out, so a page stays right when
 * entries come or go between calls; a token that no listing ever gave is ABORTED, as the spec says.
 */
export function page<T>(
  entries: readonly T[],
  keyOf: (e: T) => string,
  { maxEntries, startingToken }: { maxEntries: number; startingToken: string },
  isKey: (token: string) => boolean,
): { entries: T[]; nextToken: string } {
  if (maxEntries < 0) throw invalid('max_entries must not be negative');
  if (startingToken && !isKey(startingToken)) throw new CsiError(status.ABORTED, `starting_token ${startingToken} is not one this driver gave`);
  const sorted = [...entries].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
  const rest = startingToken ? sorted.filter((e) => keyOf(e) > startingToken) : sorted;
  if (!maxEntries || rest.length <= maxEntries) return { entries: rest, nextToken: '' };
  const taken = rest.slice(0, maxEntries);
  return { entries: taken, nextToken: keyOf(taken[taken.length - 1]!) };
}
