/**
 * `fn` over every item with at most `limit` running at once; results in the items' order. A fan-out
 * over hundreds of agents must not open hundreds of requests at once, yet one slow agent must not
 * hold the others back, so a free slot takes the next item rather than waiting for a whole batch.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
