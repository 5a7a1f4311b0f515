import {
  InvalidArgumentError,
  KindlingError,
  NotFoundError,
  UnavailableError,
  type AgentFailure,
  type Backend,
  type DriverName,
  type FleetAgent,
  type Snapshot,
  type Volume,
} from '@kindling/sdk';
import type { AgentRef } from './records.js';
import type { Scope } from './scope.js';
import { connectionRecord, type SnapshotView, type VolumeView } from './views.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface Located<T> {
  item: T;
  agent: FleetAgent;
}

/**
 * What a lookup is for. A `change` (anything that modifies or destroys) resolves a name against every
 * agent or not at all: an agent that did not answer may hold the same name. A `read` shows what answered.
 */
export type Intent = 'read' | 'change';

export const agentRef = (agent: AgentRef): AgentRef => ({ url: agent.url, hostId: agent.hostId });

export function volumeView(scope: Scope, volume: Volume, agent: AgentRef): VolumeView {
  return {
    record: volume.toDict(),
    snapshots: [...volume.snapshots].map((s) => s.toDict()),
    connections: volume.connections.map((c) => connectionRecord(c.toDict(), scope.showSecrets)),
    agent: agentRef(agent),
  };
}

export const snapshotView = (snapshot: Snapshot, agent: AgentRef): SnapshotView => ({ record: snapshot.toDict(), agent: agentRef(agent) });

export interface BackendFilter {
  backend?: string | undefined;
  driver?: DriverName | undefined;
}

interface Gathered<T> {
  values: T[];
  /** Agents that did not answer, and backends that failed: what is missing from `values`. */
  failures: AgentFailure[];
}

/** `fn` for each backend (as filtered) of each agent that answered, in parallel; what failed is collected, not reported. */
async function gather<T>(scope: Scope, filter: BackendFilter, fn: (b: Backend, agent: FleetAgent) => Promise<T>): Promise<Gathered<T>> {
  const up = scope.agents.filter((a) => a.state === 'up');
  const perAgent = await Promise.all(
    up.map(async (agent) => {
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
  return {
    values: outcomes.flatMap((o) => (o.ok ? [o.value] : [])),
    failures: [...scope.down(), ...outcomes.flatMap((o) => (o.ok ? [] : [o.failure]))],
  };
}

/**
 * `fn` for each backend of each agent that answered. A backend that fails is a warning and a partial
 * exit status, so one sick backend never hides what the others hold; against one agent, when every
 * backend failed, that failure is the command's.
 */
export async function eachBackend<T>(scope: Scope, filter: BackendFilter, fn: (b: Backend, agent: FleetAgent) => Promise<T>): Promise<T[]> {
  const { values, failures } = await gather(scope, filter, fn);
  const backendFailures = failures.filter((f) => f.backend !== undefined);
  if (!scope.settings.fleet && backendFailures[0] && values.length === 0) throw backendFailures[0].error;
  scope.failed(failures);
  return values;
}

/** A backend by name; over a fleet the name must be on one agent only. */
export async function findBackend(scope: Scope, name: string, intent: Intent = 'read'): Promise<Located<Backend>> {
  const hits: Located<Backend>[] = [];
  for (const agent of scope.agents.filter((a) => a.state === 'up')) {
    const backend = (await agent.agent.backends()).find((b) => b.name === name);
    if (backend) hits.push({ item: backend, agent });
  }
  return pick(scope, { values: hits, failures: scope.down() }, intent, false, `backend ${name}`, 'agents; give --agent for one of them');
}

/** A volume by id, or by name when the ref is not a UUID; each comes with its snapshots and connections. */
export async function findVolume(scope: Scope, ref: string, intent: Intent, backend?: string): Promise<Located<Volume>> {
  const byId = UUID.test(ref);
  const filter = byId ? { volumeId: ref } : { volumeName: ref };
  const found = await gather(scope, { backend }, async (b, agent) => (await b.volumesFiltered(filter)).map((item) => ({ item, agent })));
  return pick(scope, { values: found.values.flat(), failures: found.failures }, intent, byId, `volume ${ref}`, 'volumes; give its id');
}

/** A snapshot by id or name, among every volume's snapshots (of `volumeRef` only, when given). */
export async function findSnapshot(scope: Scope, ref: string, intent: Intent, volumeRef?: string): Promise<Located<Snapshot>> {
  const byId = UUID.test(ref);
  const matches = (s: Snapshot) => (byId ? s.id === ref : s.name === ref);
  const inVolumes = (volumes: Located<Volume>[]) => volumes.flatMap(({ item, agent }) => [...item.snapshots].filter(matches).map((s) => ({ item: s, agent })));
  const what = `snapshot ${ref}`;
  // A volume's snapshots are all on its agent: once the volume is found, its list is whole.
  if (volumeRef) return pick(scope, { values: inVolumes([await findVolume(scope, volumeRef, intent)]), failures: [] }, intent, byId, what, 'snapshots; give its id');
  const found = await gather(scope, {}, async (b, agent) => (await b.volumesFiltered({})).map((item) => ({ item, agent })));
  return pick(scope, { values: inVolumes(found.values.flat()), failures: found.failures }, intent, byId, what, 'snapshots; give its id');
}

type VolumeFilter = BackendFilter & { name?: string | undefined };

/**
 * Every volume (of the filtered backends; of one name, when given), each with its snapshots and
 * connections, handed to `take` as its page arrives: the caller keeps only what it keeps.
 */
export async function eachVolume(scope: Scope, filter: VolumeFilter, take: (found: Located<Volume>) => void): Promise<void> {
  await eachBackend(scope, filter, async (b, agent) => {
    for await (const item of b.iterVolumes(filter.name === undefined ? {} : { volumeName: filter.name })) take({ item, agent });
  });
}

/** Every volume, as eachVolume finds them, at once. */
export async function allVolumes(scope: Scope, filter: VolumeFilter = {}): Promise<Located<Volume>[]> {
  const all: Located<Volume>[] = [];
  await eachVolume(scope, filter, (found) => all.push(found));
  return all;
}

/**
 * The one resource a ref names, judged with what did not answer. Down is not gone: nothing found while
 * some agent or backend did not answer is UNAVAILABLE, never NOT_FOUND. A change by name needs every
 * agent's answer (the name may be on the silent one too); an id is unique, so one found is the one.
 */
function pick<T>(scope: Scope, { values, failures }: Gathered<T>, intent: Intent, byId: boolean, what: string, plural: string): T {
  const [first, ...rest] = values;
  if (failures.length > 0) {
    const silent = failures.map((f) => `${f.url}${f.backend ? ` backend ${f.backend}` : ''}`).join(', ');
    // Against one agent that is down, its own error says it best (wrong token, TLS, unreachable).
    const agentDown = failures.find((f) => f.backend === undefined);
    if (!scope.settings.fleet && agentDown) throw agentDown.error;
    const unanswered = { notAnswered: failures.map((f) => ({ url: f.url, backend: f.backend, code: f.error.code, message: f.error.message })) };
    if (!first) throw new UnavailableError(`${what} is not on the agents that answered; did not answer: ${silent}`, unanswered);
    if (intent === 'change') {
      // The one resource the id names, whoever else is silent: the change is whole, not partial.
      if (byId && rest.length === 0) return first;
      throw new UnavailableError(`${what}: refused, as it may also name something on what did not answer: ${silent} (give the id, or --agent URL to pick an agent)`, unanswered);
    }
    scope.failed(failures);
  }
  if (!first) throw new NotFoundError(`${what} not found`);
  if (rest.length > 0) throw new InvalidArgumentError(`${what} matches ${values.length} ${plural}`);
  return first;
}
