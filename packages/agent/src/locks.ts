/** Per-key mutual exclusion, in arrival order: the service locks resources with it, the LVM driver its VG queues. */
export class KeyedLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  async with<T>(keys: string[], work: () => Promise<T>): Promise<T> {
    // Sorted so two operations needing the same pair of locks cannot deadlock.
    const ordered = [...new Set(keys)].sort();
    const acquire = async (i: number): Promise<T> => {
      const key = ordered[i];
      if (key === undefined) return work();
      return this.withOne(key, () => acquire(i + 1));
    };
    return acquire(0);
  }

  private async withOne<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const current = previous.then(work, work);
    const tail = current.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    try {
      return await current;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
