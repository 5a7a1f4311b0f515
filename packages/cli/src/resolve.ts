import { InvalidArgumentError, KindlingError, NotFoundError, type Backend, type DriverName, type FleetAgent, type Snapshot, type Volume } from '@kindling/sdk';
import type { AgentRef } from './records.js';
import type { Scope } from './scope.js';
import type { SnapshotView, VolumeView } from './views.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface Located<T> {
  item: T;
  agent: FleetAgent;
}

export const agentRef = (agent: FleetAgent): AgentRef => ({ url: agent.url, hostId: agent.hostId });

export function volumeView(volume: Volume, agent: FleetAgent): VolumeView {
  return {
    record: volume.toDict(),
    snapshots: [...volume.snapshots].map((s) => s.toDict()),
    connections: volume.connections.map((c) => c.toDict()),
    agent: agentRef(agent),
  };
}

export const snapshotView = (snapshot: Snapshot, agent: FleetAgent): SnapshotView => ({ record: snapshot.toDict(), agent: agentRef(agent) });

export interface BackendFilter {
  backend?: string | undefined;
  driver?: DriverName | undefined;
}

/**
 * `fn` for each backend (as filtered) of each agent that answered, in parallel. A backend that fails
 * is a warning and a partial exit status, so one sick backend never hides what the others hold;
 * against one agent, when every backend failed, that failure is the command's.
 */
export async function eachBackend<T>(scope: Scope, filter: BackendFilter, fn: (b: Backend, agent: FleetAgent) => Promise<T>): Promise<T[]> {
  const perAgent = await Promise.all(
    scope.up().map(async (agent) => {
      const backends = (await agent.agent.backends()).filter(
        (b) => (filter.backend === undefined || b.name === filter.backend) && (filter.driver === undefined || b.driver === filter.driver),
      );
      return Promise.all(
        backends.map(async (b) => {
          try {
            return { ok: true as const, value: await fn(b, agent) };
          } catch (err) {
            if (!(err instanceof KindlingError)) throw err;
            return { ok: false as const, failure: { url: agent.url, hostId: agent.hostId, backend: b.name, error: err } };
          }
        }),
      );
    }),
  );
  const outcomes = perAgent.flat();
  const failures = outcomes.flatMap((o) => (o.ok ? [] : [o.failure]));
  if (!scope.settings.fleet && failures[0] && outcomes.every((o) => !o.ok)) throw failures[0].error;
  scope.failed(failures);
  return outcomes.flatMap((o) => (o.ok ? [o.value] : []));
}

/** A backend by name on the agents that answered; over a fleet the name must be on one agent only. */
export async function findBackend(scope: Scope, name: string): Promise<Located<Backend>> {
  const hits: Located<Backend>[] = [];
  for (const agent of scope.up()) {
    const backend = (await agent.agent.backends()).find((b) => b.name === name);
    if (backend) hits.push({ item: backend, agent });
  }
  return single(hits, `backend ${name}`, 'agents; give --url for one of them');
}

/** A volume by id, or by name when the ref is not a UUID; each comes with its snapshots and connections. */
export async function findVolume(scope: Scope, ref: string, backend?: string): Promise<Located<Volume>> {
  const filter = UUID.test(ref) ? { volumeId: ref } : { volumeName: ref };
  const found = await eachBackend(scope, { backend }, async (b, agent) => (await b.volumesFiltered(filter)).map((item) => ({ item, agent })));
  return single(found.flat(), `volume ${ref}`, 'volumes; give its id');
}

/** A snapshot by id or name, among every volume's snapshots (of `volumeRef` only, when given). */
export async function findSnapshot(scope: Scope, ref: string, volumeRef?: string): Promise<Located<Snapshot>> {
  const volumes = volumeRef ? [await findVolume(scope, volumeRef)] : await allVolumes(scope);
  const matches = (s: Snapshot) => (UUID.test(ref) ? s.id === ref : s.name === ref);
  const hits = volumes.flatMap(({ item, agent }) => [...item.snapshots].filter(matches).map((s) => ({ item: s, agent })));
  return single(hits, `snapshot ${ref}`, 'snapshots; give its id');
}

/** Every volume (of the filtered backends; of one name, when given), each with its snapshots and connections. */
export async function allVolumes(scope: Scope, filter: BackendFilter & { name?: string | undefined } = {}): Promise<Located<Volume>[]> {
  const found = await eachBackend(scope, filter, async (b, agent) =>
    (await b.volumesFiltered(filter.name === undefined ? {} : { volumeName: filter.name })).map((item) => ({ item, agent })),
  );
  return found.flat();
}

function single<T>(hits: T[], what: string, plural: string): T {
  const [first, ...rest] = hits;
  if (!first) throw new NotFoundError(`${what} not found`);
  if (rest.length > 0) throw new InvalidArgumentError(`${what} matches ${hits.length} ${plural}`);
  return first;
}
