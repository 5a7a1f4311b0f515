import {
  InvalidArgumentError,
  MAX_LIST_LIMIT,
  MAX_LIST_REPLY_BYTES,
  encode,
  type Change,
  type ChangesResult,
  type ParsedOpArgs,
  type VolumeListing,
} from '@kindling/protocol';
import type { ChangeEntry } from '../index/changes.js';
import type { IndexStore } from '../index/store.js';

/** Room left in a reply frame for its envelope (id, ok, keys, the cursor). */
const ENVELOPE_BYTES = 1024;

interface Paging {
  limit?: number;
  cursor?: string;
}
interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/**
 * One page of a listing: the records of `ids` (in id order, after the cursor; `get` drops those that
 * do not belong) up to `limit`, ending before the reply would pass MAX_LIST_REPLY_BYTES (`size` counts
 * what travels with a record). A page always holds at least one record, so a listing always moves on.
 * Without `limit` (clients before paging) the page is the complete list when it fits, and a refusal
 * otherwise: such a client sees everything or an error, never a silently short list.
 */
async function page<T>(
  ids: AsyncIterable<string> | Iterable<string>,
  get: (id: string) => T | undefined,
  args: Paging,
  size: (record: T) => number = (record) => encode(record).length,
): Promise<Page<T>> {
  const limit = args.limit ?? MAX_LIST_LIMIT;
  const out: Page<T> = { items: [], nextCursor: null };
  let bytes = ENVELOPE_BYTES;
  let last: string | undefined;
  for await (const id of ids) {
    const record = get(id);
    if (record === undefined) continue;
    const more = size(record);
    if (out.items.length >= limit || (out.items.length > 0 && bytes + more > MAX_LIST_REPLY_BYTES)) {
      out.nextCursor = last ?? null;
      break;
    }
    bytes += more;
    out.items.push(record);
    last = id;
  }
  if (args.limit === undefined && out.nextCursor !== null) {
    throw new InvalidArgumentError(`more than one reply holds (${MAX_LIST_LIMIT} records or ${MAX_LIST_REPLY_BYTES} bytes): page with limit and cursor`);
  }
  return out;
}

/** Ids of a small set, in order, after the cursor. */
const after = (ids: Iterable<string>, cursor: string | undefined): string[] =>
  [...ids].sort().filter((id) => cursor === undefined || id > cursor);

/** `volume.list`: volumes in id order, each with all its snapshots and connections. */
export async function volumePage(index: IndexStore, args: ParsedOpArgs<'volume.list'>): Promise<VolumeListing> {
  const withRelations = (id: string) => {
    const volume = index.getVolume(id);
    if (!volume || (args.backend !== undefined && volume.backend !== args.backend) || (args.name !== undefined && volume.name !== args.name)) {
      return undefined;
    }
    return { volume, snapshots: index.snapshotsOf(id), connections: index.connectionsOf(id) };
  };
  const size = (r: NonNullable<ReturnType<typeof withRelations>>) =>
    [r.volume, ...r.snapshots, ...r.connections].reduce((sum, record) => sum + encode(record).length, 0);
  const found = await page(volumeIds(index, args), withRelations, args, size);
  return {
    volumes: found.items.map((r) => r.volume),
    snapshots: found.items.flatMap((r) => r.snapshots),
    connections: found.items.flatMap((r) => r.connections),
    nextCursor: found.nextCursor,
  };
}

/** The ids a volume page walks: narrowed by the index first (by id, by name), the page checks the rest. */
function volumeIds(index: IndexStore, args: ParsedOpArgs<'volume.list'>): AsyncIterable<string> | Iterable<string> {
  if (args.id !== undefined) return after([args.id], args.cursor);
  if (args.name !== undefined) {
    // By name is by backend and name (the SDK always names the backend); across backends, a lookup per backend.
    const named = index.volumesNamed(args.backend, args.name);
    return after(named.map((v) => v.id), args.cursor);
  }
  return index.idsAfter(args.backend === undefined ? 'volume' : { backend: args.backend }, args.cursor);
}

/** `snapshot.list`: of one volume, or all (of one backend, of one name), in id order. */
export async function snapshotPage(index: IndexStore, args: ParsedOpArgs<'snapshot.list'>) {
  const ids = args.volumeId !== undefined ? after(index.snapshotsOf(args.volumeId).map((s) => s.id), args.cursor) : index.idsAfter('snapshot', args.cursor);
  const get = (id: string) => {
    const snapshot = index.getSnapshot(id);
    const wanted = snapshot && (args.backend === undefined || snapshot.backend === args.backend) && (args.name === undefined || snapshot.name === args.name);
    return wanted ? snapshot : undefined;
  };
  const found = await page(ids, get, args);
  return args.limit === undefined ? found.items : { snapshots: found.items, nextCursor: found.nextCursor };
}

/** `connection.list`: a volume's connections in id order. */
export async function connectionPage(index: IndexStore, args: ParsedOpArgs<'connection.list'>) {
  const found = await page(after(index.connectionsOf(args.volumeId).map((c) => c.id), args.cursor), (id) => index.getConnection(id), args);
  return args.limit === undefined ? found.items : { connections: found.items, nextCursor: found.nextCursor };
}

/** `backend.list`: the configured backends by name. */
export async function backendPage<B extends { name: string }>(backends: B[], args: ParsedOpArgs<'backend.list'>) {
  const byName = new Map(backends.map((b) => [b.name, b]));
  const found = await page(after(byName.keys(), args.cursor), (name) => byName.get(name), args);
  return args.limit === undefined ? found.items : { backends: found.items, nextCursor: found.nextCursor };
}

/** `group.list`: the group snapshots in id order. */
export async function groupPage<G extends { id: string }>(groups: G[], args: ParsedOpArgs<'group.list'>) {
  const byId = new Map(groups.map((g) => [g.id, g]));
  const found = await page(after(byId.keys(), args.cursor), (id) => byId.get(id), args);
  return args.limit === undefined ? found.items : { groups: found.items, nextCursor: found.nextCursor };
}

/**
 * `changes.list`: each record changed after `since` (and after the cursor, a previous page's last
 * change) at its newest state, or its tombstone, in sequence order; `history: 'gone'` when the retained
 * history does not reach back that far or `epoch` is another index's.
 */
export async function changesPage(index: IndexStore, args: ParsedOpArgs<'changes.list'>): Promise<ChangesResult> {
  const log = index.changes;
  // Read before the walk: every change up to it is committed, so the walk sees it.
  const position = log.position();
  if (!log.reaches(args.epoch, args.since)) return { history: 'gone', floor: log.oldest, ...position };
  const from = args.cursor === undefined ? args.since : Math.max(args.since, Number(args.cursor));
  if (!Number.isSafeInteger(from)) throw new InvalidArgumentError('cursor is not one changes.list handed out', { cursor: args.cursor });
  const entries = new Map<string, ChangeEntry>();
  // A record changed both before and after a restart of the agent has two entries: listed once a page.
  const listed = new Set<string>();
  async function* walk() {
    for await (const entry of index.changesAfter(from)) {
      entries.set(entry.key, entry);
      yield entry.key;
    }
  }
  const get = (key: string): Change | undefined => {
    const entry = entries.get(key);
    entries.delete(key);
    if (!entry || listed.has(entry.id)) return undefined;
    listed.add(entry.id);
    const { kind, id, seq, volumeId = '' } = entry;
    if (kind === 'volume') return { kind, id, seq, record: index.getVolume(id) ?? null };
    if (kind === 'snapshot') return { kind, id, volumeId, seq, record: index.getSnapshot(id) ?? null };
    return { kind, id, volumeId, seq, record: index.getConnection(id) ?? null };
  };
  const found = await page(walk(), get, { ...args, limit: args.limit ?? MAX_LIST_LIMIT });
  return { history: 'complete', changes: found.items, nextCursor: found.nextCursor, ...position };
}
