import {
  InvalidArgumentError,
  MAX_LIST_LIMIT,
  MAX_LIST_REPLY_BYTES,
  encode,
  type ParsedOpArgs,
  type VolumeListing,
  type VolumeRecord,
} from '@kindling/protocol';
import type { IndexStore } from '../index/store.js';

/** Room left in a reply frame for its envelope (id, ok, keys, the cursor). */
const ENVELOPE_BYTES = 1024;

/**
 * One page of `volume.list`: volumes in id order after `cursor`, each with its snapshots and
 * connections, ending at `limit` volumes or before the reply would pass MAX_LIST_REPLY_BYTES (a page
 * always holds at least one volume, so a listing always moves on). Without `limit` (clients before
 * paging) the reply is the complete list when it fits one page and a refusal otherwise: such a client
 * sees everything or an error, never a silently short list.
 */
export async function volumePage(index: IndexStore, args: ParsedOpArgs<'volume.list'>): Promise<VolumeListing> {
  const limit = args.limit ?? MAX_LIST_LIMIT;
  // One more id than asked says whether a page follows.
  const ids = await candidateIds(index, args, limit + 1);
  const page: VolumeListing = { volumes: [], snapshots: [], connections: [], nextCursor: null };
  let bytes = ENVELOPE_BYTES;
  for (const [i, id] of ids.entries()) {
    const volume = index.getVolume(id);
    if (!volume || (args.name !== undefined && volume.name !== args.name)) continue;
    const snapshots = index.snapshotsOf(id);
    const connections = index.connectionsOf(id);
    const size = [volume, ...snapshots, ...connections].reduce((sum, record) => sum + encode(record).length, 0);
    const full = page.volumes.length >= limit || (page.volumes.length > 0 && bytes + size > MAX_LIST_REPLY_BYTES);
    if (full) {
      page.nextCursor = ids[i - 1] ?? null;
      break;
    }
    bytes += size;
    page.volumes.push(volume);
    page.snapshots.push(...snapshots);
    page.connections.push(...connections);
  }
  if (args.limit === undefined && page.nextCursor !== null) {
    throw new InvalidArgumentError(
      `more volumes than one reply holds (${MAX_LIST_LIMIT} or ${MAX_LIST_REPLY_BYTES} bytes): page with limit and cursor`,
    );
  }
  return page;
}

/** Ids in order that may belong on the page: the filters narrow by index first, the page loop checks the rest. */
async function candidateIds(index: IndexStore, args: ParsedOpArgs<'volume.list'>, count: number): Promise<string[]> {
  const after = (id: string) => args.cursor === undefined || id > args.cursor;
  if (args.id !== undefined) {
    const one = index.getVolume(args.id);
    return one && after(one.id) && (args.backend === undefined || one.backend === args.backend) ? [one.id] : [];
  }
  if (args.name !== undefined) {
    // By name is by backend and name (the SDK always names the backend); across backends it reads them all.
    const named = args.backend !== undefined ? index.volumesNamed(args.backend, args.name) : [...index.allVolumes()].filter((v) => v.name === args.name);
    return ordered(named).filter(after).slice(0, count);
  }
  return index.volumeIdsAfter(args.cursor, count, args.backend);
}

const ordered = (volumes: VolumeRecord[]): string[] => volumes.map((v) => v.id).sort();
