/** The in-memory lookups of the index (store.ts): ids by key, and counts by key. */

/**
 * One secondary index: a key (backend, name, volume id) to the ids under it. Most keys hold one id (a
 * name, a volume's single snapshot), kept as the id itself: a Set per key cost ~200 bytes a volume.
 */
export class Postings {
  private readonly map = new Map<string, string | Set<string>>();
  add(key: string, id: string): void {
    const ids = this.map.get(key);
    if (ids === undefined || ids === id) this.map.set(key, id);
    else if (typeof ids === 'string') this.map.set(key, new Set([ids, id]));
    else ids.add(id);
  }
  remove(key: string, id: string): void {
    const ids = this.map.get(key);
    if (ids === id) this.map.delete(key);
    else if (typeof ids === 'object') {
      ids.delete(id);
      if (ids.size === 1) this.map.set(key, ids.values().next().value as string);
    }
  }
  ids(key: string): Iterable<string> {
    const ids = this.map.get(key);
    return ids === undefined ? [] : typeof ids === 'string' ? [ids] : ids;
  }
  /** The ids under every key that starts with `prefix`. */
  *idsUnder(prefix: string): Iterable<string> {
    for (const key of this.map.keys()) if (key.startsWith(prefix)) yield* this.ids(key);
  }
}

/** A running count per key (a backend), kept as records change: a count is read without a walk. */
export class Tally {
  private readonly map = new Map<string, number>();
  add(key: string, by: 1 | -1): void {
    const n = (this.map.get(key) ?? 0) + by;
    if (n === 0) this.map.delete(key);
    else this.map.set(key, n);
  }
  of(key: string): number {
    return this.map.get(key) ?? 0;
  }
  keys(): Iterable<string> {
    return this.map.keys();
  }
}
