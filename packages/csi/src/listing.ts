import { status } from '@grpc/grpc-js';
import { MAX_LIST_LIMIT, UnavailableError, type Backend, type Fleet, type FleetAgent } from '@kindling/sdk';
import { CsiError, invalid } from './errors.js';
import { decodeHost, isBackendName } from './ids.js';
import type { ListRequest } from './types.js';

/**
 * Where a fleet-wide listing goes on: a host, one of its backends, and that backend's own cursor (null:
 * the backend is done, go on with the next). Hosts by host id, backends by name, each backend in the
 * agent's order, so a token stays right however many agents there are and whatever came or went.
 */
interface Position {
  hostId: string;
  backend: string;
  cursor: string | null;
}

const tokenOf = ({ hostId, backend, cursor }: Position): string => `${encodeURIComponent(hostId)}:${backend}:${cursor === null ? '' : encodeURIComponent(cursor)}`;

function positionOf(token: string): Position | null {
  const parts = token.split(':');
  if (parts.length !== 3) return null;
  const [host, backend, cursor] = parts as [string, string, string];
  const hostId = decodeHost(host);
  let decoded: string;
  try {
    decoded = decodeURIComponent(cursor);
  } catch {
    return null;
  }
  return hostId !== null && isBackendName(backend) ? { hostId, backend, cursor: cursor === '' ? null : decoded } : null;
}

/** One page of one backend: what it holds after `cursor`, at most `limit`. */
export type BackendPager<T> = (backend: Backend, limit: number, cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>;

/**
 * A CSI list page over every agent's own paging: each agent is asked only for what the page still
 * needs (`max_entries`, 0: all), from where the token says, so a page of 100 over 1,000 agents asks the
 * few agents it reaches. An agent the page must read that is down (or drops during it) is read through
 * `whenDown` when given, else UNAVAILABLE (a listing without it would read as its volumes gone); a token
 * this driver never gave is ABORTED.
 */
export async function pageOverFleet<T>(
  fleet: Fleet,
  req: ListRequest,
  pager: BackendPager<T>,
  whenDown?: (agent: FleetAgent) => BackendPager<T>,
): Promise<{ entries: { item: T; hostId: string }[]; nextToken: string }> {
  if (req.maxEntries < 0) throw invalid('max_entries must not be negative');
  const from = req.startingToken ? positionOf(req.startingToken) : null;
  if (req.startingToken && !from) throw new CsiError(status.ABORTED, `starting_token ${req.startingToken} is not one this driver gave`);
  const unknown = fleet.agents.find((a) => a.hostId === null);
  if (unknown) throw new CsiError(status.UNAVAILABLE, `the agent at ${unknown.url} has never answered: its volumes cannot be listed`);
  const agents = [...fleet.agents].sort((a, b) => (a.hostId! < b.hostId! ? -1 : a.hostId! > b.hostId! ? 1 : 0));
  const entries: { item: T; hostId: string }[] = [];
  for (const agent of agents) {
    const hostId = agent.hostId!;
    if (from && hostId < from.hostId) continue;
    const fallback = whenDown?.(agent);
    if (agent.state !== 'up' && !fallback) throw new CsiError(status.UNAVAILABLE, `the agent of host ${hostId} is not reachable (${agent.url})`);
    const read: BackendPager<T> = async (backend, limit, cursor) => {
      if (agent.state !== 'up' && fallback) return fallback(backend, limit, cursor);
      try {
        return await pager(backend, limit, cursor);
      } catch (err) {
        if (fallback && err instanceof UnavailableError) return fallback(backend, limit, cursor);
        throw err;
      }
    };
    const backends = (await agent.agent.backends()).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const backend of backends) {
      let cursor: string | undefined;
      if (from && hostId === from.hostId) {
        if (backend.name < from.backend || (backend.name === from.backend && from.cursor === null)) continue;
        if (backend.name === from.backend) cursor = from.cursor!;
      }
      for (;;) {
        const want = req.maxEntries ? req.maxEntries - entries.length : MAX_LIST_LIMIT;
        const page = await read(backend, Math.min(want, MAX_LIST_LIMIT), cursor);
        entries.push(...page.items.map((item) => ({ item, hostId })));
        if (req.maxEntries && entries.length >= req.maxEntries) return { entries, nextToken: tokenOf({ hostId, backend: backend.name, cursor: page.nextCursor }) };
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
    }
  }
  return { entries, nextToken: '' };
}
