import type { Agent, Volume } from '@kindling/sdk';

/**
 * A page of the volumes of `backend` as this controller last saw them on an agent it cannot reach now
 * (the SDK's identity map, no round trip), in the agent's own order (id) and with its cursor (the last
 * id), so a listing goes on the same way whether the agent is back or not. Volumes the controller never
 * listed there are not known, so a controller that never reached an agent cannot list it this way.
 */
export function lastSeenPage(agent: Agent, backend: string, limit: number, cursor: string | undefined): { items: Volume[]; nextCursor: string | null } {
  const known = agent
    .dump()
    .filter((d) => d.backend === backend && d.status !== 'deleted' && (cursor === undefined || d.id > cursor))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  const taken = known.slice(0, limit).map((d) => agent.load(d));
  return { items: taken, nextCursor: known.length > limit ? taken[taken.length - 1]!.id : null };
}

/** The volume with this id as last seen on an agent that cannot be reached now; null if never seen. */
export function lastSeen(agent: Agent, volumeId: string): Volume | null {
  const found = agent.dump().find((d) => d.id === volumeId && d.status !== 'deleted');
  return found ? agent.load(found) : null;
}
