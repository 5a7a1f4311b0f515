import {
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  TimeoutError,
  UnavailableError,
  messageOf,
  validateArgs,
  type BackendStats,
  type DriverName,
  type KindlingError,
} from '@kindling/protocol';
import type { Agent } from './agent.js';
import type { Backend, CreateVolumeOptions } from './backend.js';
import { probeReadyz, type Readyz } from './fleet/health.js';
import { Member, kindlingOrRethrow, type FleetAgent, type FleetAgentState, type RetryDelays } from './fleet/member.js';
import { rank, type Candidate, type Ranked } from './fleet/placement.js';
import { mapLimit } from './fleet/pool.js';
import { Snapshot } from './snapshot.js';
import type { ReconnectOptions, TlsOptions } from './options.js';
import { Volume } from './volume.js';

export type { FleetAgent, FleetAgentState } from './fleet/member.js';
export type { BackendReadiness, Readyz } from './fleet/health.js';

/** One agent of a fleet with its own credentials; what it leaves out comes from FleetOptions. */
export interface FleetAgentSpec {
  url: string;
  /** This agent's token (agents of one fleet need not share one). */
  token?: string;
  /** This agent's TLS options (RPC and health probes alike). */
  tls?: TlsOptions;
}

export interface FleetOptions {
  /** Sent to every agent without a token of its own (FleetAgentSpec); default from the environment, as ConnectOptions. */
  token?: string;
  /** For every agent without TLS options of its own: its RPC link and its `/readyz` probe. */
  tls?: TlsOptions;
  /** Per connect attempt to one agent (upgrade and hello); see ConnectOptions. Default `timeoutMs`, at most 10000. */
  connectTimeoutMs?: number;
  /** Per read (lists, gets, stats) from one agent; see ConnectOptions. Default `timeoutMs`, at most 30000. */
  readTimeoutMs?: number;
  /** Agents a fan-out (lists, stats, health) asks at once. Default 32. */
  concurrency?: number;
  /**
   * Agents `Fleet.connect` dials at once (each within `connectTimeoutMs`), so a fleet of 1,000 does not
   * open 1,000 upgrades in one burst. Default `concurrency`.
   */
  connectConcurrency?: number;
  /** Per short change sent to one agent. Default 30000. */
  timeoutMs?: number;
  /** Per long operation (clone, revert, deletes, ...): see ConnectOptions. Default none while keepalive watches the link. */
  longTimeoutMs?: number;
  /**
   * Delays between attempts to reach an agent that is down, doubling from `initialDelayMs` (default
   * 250) to `maxDelayMs` (default 5000); also each Agent's redial after a drop.
   */
  reconnect?: ReconnectOptions;
}

/** An agent (or one of its backends, when `backend` is set) that did not answer a fan-out. */
export interface AgentFailure {
  url: string;
  /** null when the agent never answered. */
  hostId: string | null;
  backend?: string;
  error: KindlingError;
}

/**
 * A fan-out's answer: what answered under `key`, and who did not under `failed`. A partial result is a
 * result: one dead agent is a `failed` entry, never a rejection. E.g. `{ volumes: Volume[], failed }`.
 */
export type FleetResult<K extends string, T> = { [key in K]: T[] } & { failed: AgentFailure[] };

export interface BackendCapacity {
  agent: FleetAgent;
  backend: Backend;
  stats: BackendStats;
}

export interface FleetVolumesFilter {
  /** A string matches exactly (the agents' name index answers); a RegExp is tested here, e.g. `/^db-/`. */
  name?: string | RegExp;
  driver?: DriverName;
}

/** Where a volume may go; placement reads only the capacity the agents pushed (no round trip). */
export interface PlaceWhere {
  driver?: DriverName;
  /** Only backends of this name. */
  backend?: string;
  /**
   * Only agents of these host ids, in order of preference: a backend with room on an earlier host wins
   * over one with more room on a later host (a CSI topology's preferred, then requisite, segments).
   */
  hosts?: readonly string[];
}

export interface PlaceOptions extends PlaceWhere {
  size: number;
}

/**
 * No `requestId`: a fleet create may move to another backend when one refuses, each attempt its own
 * request. A TIMEOUT or UNAVAILABLE names the agent and backend tried (`details.url`, `details.backend`)
 * with the `details.requestId` to ask that backend again with.
 */
export type FleetCreateVolumeOptions = Omit<CreateVolumeOptions, 'requestId'> & PlaceWhere;

/** Where a volume would go, from the capacity the agents last pushed. */
export interface Placement {
  agent: FleetAgent;
  backend: Backend;
  stats: BackendStats;
  /** GiB the backend could still take before this volume, after its reserve and over-subscription. */
  roomGb: number;
}

export interface AgentHealth {
  url: string;
  hostId: string | null;
  /** The RPC link. */
  state: FleetAgentState;
  /** Why the RPC link is down. */
  lastError: KindlingError | null;
  /** `/readyz` answered and every backend is ready. */
  ready: boolean;
  /** `/readyz`'s report (200 or 503), null when it could not be read. */
  readyz: Readyz | null;
  /** Why `/readyz` could not be read. */
  readyzError: KindlingError | null;
  /**
   * Why it is not ready, in words, whichever part failed: the RPC link's error, the probe's, or each
   * not-ready backend's reason from `/readyz`. null when ready.
   */
  reason: string | null;
  /** How long the probe took. */
  elapsedMs: number;
}

const DEFAULT_DELAYS: RetryDelays = { initialDelayMs: 250, maxDelayMs: 5000 };

/** A create whose outcome is unknown, with where it went: the caller asks that backend again by `details.requestId`. */
function whereTried(err: KindlingError, member: Member, backend: Backend): KindlingError {
  const details = { ...err.details, url: member.url, hostId: member.hostId, backend: backend.name };
  const Class = err.code === 'TIMEOUT' ? TimeoutError : UnavailableError;
  return new Class(err.message, details, { cause: err });
}

interface Target {
  member: Member;
  backend: Backend;
}

/**
 * Many agents driven as one. Agents that cannot be reached are kept (`state: 'down'`, with the error)
 * and retried in the background; every call answers with what the reachable ones said. The Volumes,
 * Snapshots and Backends it returns are those of each agent's own Agent (same identity map), so they
 * work as if obtained from that Agent; `fleet.agentOf(x)` names the agent.
 */
export class Fleet {
  readonly #members: Member[];
  /** Each Agent's member: `agentOf` per listed volume must not walk 1,000 agents. */
  readonly #byAgent: ReadonlyMap<Agent, Member>;
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  #closed = false;

  private constructor(members: Member[], concurrency: number, timeoutMs: number) {
    this.#members = members;
    this.#byAgent = new Map(members.map((m) => [m.agent, m]));
    this.#concurrency = concurrency;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connects to every agent in parallel and resolves once each answered or failed its first attempt
   * (the hello only: no call waits for backend stats it does not need). Each agent is a URL, or a
   * FleetAgentSpec with its own token and TLS options. Never rejects for an unreachable agent; rejects
   * (InvalidArgumentError) for a malformed URL or option.
   */
  static async connect(agents: readonly (string | FleetAgentSpec)[], options: FleetOptions = {}): Promise<Fleet> {
    const concurrency = options.concurrency ?? 32;
    const connectConcurrency = options.connectConcurrency ?? concurrency;
    const timeoutMs = options.timeoutMs ?? 30_000;
    for (const [key, value] of Object.entries({ concurrency, connectConcurrency })) {
      if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`${key} must be a positive integer`, { [key]: value });
    }
    const specs = agents.map((a): FleetAgentSpec => (typeof a === 'string' ? { url: a } : a));
    const urls = specs.map((s) => s.url);
    if (new Set(urls).size !== urls.length) throw new InvalidArgumentError('an agent URL is listed twice', { urls });
    const delays = { ...DEFAULT_DELAYS, ...options.reconnect };
    const { connectTimeoutMs, readTimeoutMs, longTimeoutMs } = options;
    const shared = { connectTimeoutMs, readTimeoutMs, timeoutMs, longTimeoutMs, reconnect: options.reconnect ?? true };
    const members = specs.map(
      ({ url, token = options.token, tls = options.tls }) => new Member(url, { ...shared, token, tls }, delays),
    );
    await mapLimit(members, connectConcurrency, (member) => member.start());
    return new Fleet(members, concurrency, timeoutMs);
  }

  /** Every agent given to `connect`, in that order, up or not. */
  get agents(): readonly FleetAgent[] {
    return [...this.#members];
  }

  /** The agent a resource from this fleet lives on; NotFoundError for one of another Agent. */
  agentOf(resource: Volume | Snapshot | Backend): FleetAgent {
    const backend = resource instanceof Volume ? resource.backend : resource instanceof Snapshot ? resource.volume.backend : resource;
    const member = this.#byAgent.get(backend.agent);
    if (!member) throw new NotFoundError(`backend ${backend.name} is not one of this fleet's agents`, { backend: backend.name });
    return member;
  }

  /** Each up agent's configured backends (as of its last hello: no round trip). */
  async backends({ driver }: { driver?: DriverName } = {}): Promise<FleetResult<'backends', Backend>> {
    const { up, failed } = this.#split();
    const backends = up.flatMap((m) => m.backends.filter((b) => driver === undefined || b.driver === driver));
    return { backends, failed };
  }

  /** Every volume of every up agent (optionally by name and driver), each with its snapshots and connections. */
  async volumes({ name, driver }: FleetVolumesFilter = {}): Promise<FleetResult<'volumes', Volume>> {
    const exact = typeof name === 'string' ? name : undefined;
    const { results, failed } = await this.#perBackend(driver, (backend) => backend.volumesFiltered({ volumeName: exact }));
    const volumes = results.flat();
    return { volumes: name instanceof RegExp ? volumes.filter((v) => v.name !== null && name.test(v.name)) : volumes, failed };
  }

  /** Every up agent's snapshots named `name` (the agents filter: one small reply per backend), each with its volume. */
  async snapshots({ name, driver }: { name: string; driver?: DriverName }): Promise<FleetResult<'snapshots', Snapshot>> {
    const { results, failed } = await this.#perBackend(driver, (backend) => backend.snapshotsFiltered({ snapshotName: name }));
    return { snapshots: results.flat(), failed };
  }

  /**
   * The volume with this id, from whichever agent has it. Down is not gone: when no agent that answered
   * has it and some did not answer, this rejects with UnavailableError (`details.failed`: who did not
   * answer), never NotFoundError; NotFoundError only when every agent answered.
   */
  async volume(id: string): Promise<Volume> {
    const { results, failed } = await this.#perBackend(undefined, (backend) => backend.volumesFiltered({ volumeId: id }));
    const [found] = results.flat();
    if (found) return found;
    if (failed.length === 0) throw new NotFoundError(`no agent of the fleet has volume ${id}`, { id });
    const down = failed.map((f) => ({ url: f.url, hostId: f.hostId, ...(f.backend ? { backend: f.backend } : {}), message: f.error.message }));
    throw new UnavailableError(`volume ${id} is on none of the agents that answered, and ${failed.length} did not answer`, { id, failed: down });
  }

  /** Each backend's stats, asked now (`refresh`: the agent rescans storage first); also refreshes placement's cache. */
  async stats({ refresh = false, driver }: { refresh?: boolean; driver?: DriverName } = {}): Promise<FleetResult<'stats', BackendCapacity>> {
    const { results, failed } = await this.#perBackend(driver, async (backend, member) => {
      const stats = await backend.stats({ refresh });
      member.capacity.set(backend.name, stats);
      return { agent: member, backend, stats };
    });
    return { stats: results, failed };
  }

  /**
   * The backend a `size` GiB volume would go to: the most room after its reserve and over-subscription
   * (thin: total × ratio − provisioned; thick: free), ties to the fewest volumes. Rejects with the
   * ConflictError `createVolume` would when nothing fits.
   */
  async place({ size, ...where }: PlaceOptions): Promise<Placement> {
    this.#checkNewVolume({ size });
    await this.#capacityFor(size, where, new Set());
    const [best] = this.#ranked(size, where, new Set());
    if (!best) throw this.#noRoom(size, where, []);
    return { agent: best.key.member, backend: best.key.backend, stats: best.stats, roomGb: best.roomGb };
  }

  /**
   * Creates the volume where `place` says. When that backend refuses for space (ConflictError: the
   * pushed capacity was stale, or a share is fuller than the backend's total), the next best is
   * tried; any other error rejects at once, as the volume may exist. Rejects with ConflictError when
   * no backend took it.
   */
  async createVolume(options: FleetCreateVolumeOptions): Promise<Volume> {
    const { driver, backend: backendName, hosts, timeoutMs, onProgress, ...create } = options;
    const where: PlaceWhere = { driver, backend: backendName, hosts };
    this.#checkNewVolume(create);
    const refused: AgentFailure[] = [];
    const tried = new Set<Backend>();
    for (;;) {
      await this.#capacityFor(create.size, where, tried);
      // Ranking and reserving in one synchronous step, so parallel creates each see the others' reservations.
      const [best] = this.#ranked(create.size, where, tried);
      if (!best) throw this.#noRoom(create.size, where, refused);
      const { member, backend } = best.key;
      tried.add(backend);
      member.reserve(backend.name, create.size);
      let made = false;
      try {
        const volume = await backend.createVolume({ ...create, timeoutMs, onProgress });
        made = true;
        return volume;
      } catch (err) {
        if (err instanceof TimeoutError || err instanceof UnavailableError) throw whereTried(err, member, backend);
        if (!(err instanceof ConflictError)) throw err;
        refused.push({ url: member.url, hostId: member.hostId, backend: backend.name, error: err });
      } finally {
        member.release(backend.name, create.size, made);
      }
    }
  }

  /** Each agent's `/readyz` and RPC link, in `agents` order. Never rejects: a dead agent is an entry saying so. */
  async health({ timeoutMs = Math.min(this.#timeoutMs, 5000) }: { timeoutMs?: number } = {}): Promise<AgentHealth[]> {
    this.#open();
    return mapLimit(this.#members, this.#concurrency, async (member): Promise<AgentHealth> => {
      const started = performance.now();
      let readyz: Readyz | null = null;
      let readyzError: KindlingError | null = null;
      try {
        readyz = await probeReadyz(member.url, timeoutMs, member.tls);
      } catch (err) {
        readyzError = new UnavailableError(messageOf(err), { url: member.url });
      }
      const ready = readyz?.ready ?? false;
      const notReady = readyz?.backends.filter((b) => !b.ready).map((b) => `backend ${b.name}: ${b.reason ?? 'not ready'}`) ?? [];
      const why = [member.lastError?.message, readyzError?.message, ...notReady].filter((x): x is string => Boolean(x));
      return {
        url: member.url,
        hostId: readyz?.hostId ?? member.hostId,
        state: member.state,
        lastError: member.lastError,
        ready,
        readyz,
        readyzError,
        reason: ready ? null : why.join('; ') || 'not ready',
        elapsedMs: performance.now() - started,
      };
    });
  }

  /** Closes every link and stops the background retries. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#members.map((m) => m.close()));
  }

  #open(): void {
    if (this.#closed) throw new UnavailableError('this fleet was closed');
  }

  #split(): { up: Member[]; failed: AgentFailure[] } {
    this.#open();
    const up = this.#members.filter((m) => m.state === 'up');
    const failed = this.#members
      .filter((m) => m.state !== 'up')
      .map((m) => ({ url: m.url, hostId: m.hostId, error: m.unavailable() }));
    return { up, failed };
  }

  /** `fn` for each backend (of `driver`) of each up agent, agents `concurrency` at a time; failures collected. */
  async #perBackend<T>(
    driver: DriverName | undefined,
    fn: (backend: Backend, member: Member) => Promise<T>,
  ): Promise<{ results: T[]; failed: AgentFailure[] }> {
    const { up, failed } = this.#split();
    const perAgent = await mapLimit(up, this.#concurrency, (member) =>
      Promise.all(
        member.backends
          .filter((b) => driver === undefined || b.driver === driver)
          .map(async (backend): Promise<{ ok: true; value: T } | { ok: false; failure: AgentFailure }> => {
            try {
              return { ok: true, value: await fn(backend, member) };
            } catch (err) {
              return { ok: false, failure: { url: member.url, hostId: member.hostId, backend: backend.name, error: kindlingOrRethrow(err) } };
            }
          }),
      ),
    );
    const results: T[] = [];
    for (const outcome of perAgent.flat()) {
      if (outcome.ok) results.push(outcome.value);
      else failed.push(outcome.failure);
    }
    return { results, failed };
  }

  /**
   * Placement ranks what the agents told. The stats fetch of an agent that just (re)joined is waited
   * for CAPACITY_GRACE_MS at most from its start, so a host that just came up is a candidate while one
   * whose stats hang holds no create back after that; past it, only when nothing known has room.
   */
  async #capacityFor(size: number, where: PlaceWhere, skip: ReadonlySet<Backend>): Promise<void> {
    this.#open();
    const loading = () => this.#members.filter((m) => m.state === 'up' && m.loadingCapacity);
    await Promise.all(loading().map((m) => m.capacityFresh));
    if (this.#ranked(size, where, skip).length > 0) return;
    await Promise.all(loading().map((m) => m.capacityLoaded));
  }

  /** Up backends (where allowed) with cached capacity and room for `size`, best first; `skip`: those that already refused. */
  #ranked(size: number, { driver, backend: name, hosts }: PlaceWhere, skip: ReadonlySet<Backend>): Ranked<Target>[] {
    const candidates: Candidate<Target>[] = [];
    for (const member of this.#members) {
      if (member.state !== 'up' || (hosts && !hosts.includes(member.hostId ?? ''))) continue;
      for (const backend of member.backends) {
        const stats = member.capacity.get(backend.name);
        if (!stats || skip.has(backend) || (driver !== undefined && backend.driver !== driver) || (name !== undefined && backend.name !== name)) continue;
        const inFlight = member.inFlight(backend.name);
        candidates.push({
          key: { member, backend },
          stats,
          pendingGb: inFlight.gb,
          pendingVolumes: inFlight.volumes,
          order: `${member.hostId}/${backend.name}`,
        });
      }
    }
    const ranked = rank(candidates, size);
    // Stable: within one host, room still decides.
    const preference = (r: Ranked<Target>) => (hosts ? hosts.indexOf(r.key.member.hostId ?? '') : 0);
    return hosts ? ranked.sort((a, b) => preference(a) - preference(b)) : ranked;
  }

  #noRoom(size: number, { driver, backend, hosts }: PlaceWhere, refused: AgentFailure[]): ConflictError {
    const down = this.#members.filter((m) => m.state !== 'up').map((m) => m.url);
    const where = `${backend ? ` named ${backend}` : ''}${driver ? ` of driver ${driver}` : ''}${hosts ? ` on ${hosts.join(', ')}` : ' in the fleet'}`;
    return new ConflictError(`no backend${where} has room for ${size} GiB${down.length ? ` (${down.length} agent(s) down)` : ''}`, {
      requestedGb: size,
      ...(driver ? { driver } : {}),
      ...(backend ? { backend } : {}),
      ...(hosts ? { hosts: [...hosts] } : {}),
      refused: refused.map((r) => ({ url: r.url, hostId: r.hostId, backend: r.backend, message: r.error.message })),
      down,
    });
  }

  /** Bad input is refused before placement, with the op's own message, not after a search for room. */
  #checkNewVolume(options: CreateVolumeOptions): void {
    // The backend is not chosen yet; any valid name lets the op's schema check the rest.
    const checked = validateArgs('volume.create', { ...options, backend: 'placement' });
    if (!checked.ok) throw new InvalidArgumentError(checked.message, { op: 'volume.create', issues: checked.issues });
  }
}
