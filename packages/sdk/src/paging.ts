import { MAX_LIST_LIMIT, type Listing, type OpArgs, type VolumeListing } from '@kindling/protocol';

export type ListFilter = Omit<OpArgs<'volume.list'>, 'limit' | 'cursor'>;

/**
 * Every page of one `volume.list`, in the agent's order, each asked for once the one before is
 * consumed: no reply passes the agent's frame bound, and a caller can stop early.
 */
export async function* volumePages(
  list: (args: OpArgs<'volume.list'>) => Promise<VolumeListing>,
  filter: ListFilter,
): AsyncGenerator<VolumeListing> {
  let cursor: string | undefined;
  do {
    const page = await list({ ...filter, limit: MAX_LIST_LIMIT, ...(cursor === undefined ? {} : { cursor }) });
    yield page;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
}

/** All of an async iterable, in order. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Every item of a list op other than `volume.list`, page by page (`key` names the page's items). */
export async function allPages<K extends string, T>(
  key: K,
  list: (paging: { limit: number; cursor?: string }) => Promise<Listing<K, T>>,
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await list({ limit: MAX_LIST_LIMIT, ...(cursor === undefined ? {} : { cursor }) });
    // The bare-array form answers a request without `limit`: whole, if a peer sends it anyway.
    if (Array.isArray(page)) return [...all, ...page];
    all.push(...(page[key] as T[]));
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return all;
}
