import { MAX_LIST_LIMIT, type OpArgs, type VolumeListing } from '@kindling/protocol';

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
