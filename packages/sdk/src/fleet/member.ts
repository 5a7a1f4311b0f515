import { KindlingError, UnavailableError, type BackendStats } from '@kindling/protocol';
import { Agent } from '../agent.js';
import type { Backend } from '../backend.js';
import type { ConnectOptions, TlsOptions } from '../options.js';

/**
 * `connecting` during the first attempt; `up` while the RPC link is open; `down` while it is not (the
 * fleet keeps retrying in the background); `closed` once the fleet is closed.
 */
export type FleetAgentState = 'connecting' | 'up' | 'down' | 'closed';

/** One agent of a fleet. Live: the fields follow the link as it drops and comes back. */
export interface FleetAgent {
  /** As given to `Fleet.connect`. */
  readonly url: string;
  /** null until the agent first said hello. */
  readonly hostId: string | null;
  readonly state: FleetAgentState;
  /** Why it is down (or why the last attempt failed); null while up. */
  readonly lastError: KindlingError | null;
  /** The very Agent whose objects the fleet hands out. */
  readonly agent: Agent;
  /** Backend name → its last stats, fetched at (re)connect or pushed since: read without a round trip. */
  readonly capacity: ReadonlyMap<string, BackendStats>;
}

/**
 * How long placement waits for the capacity of an agent that just (re)joined: long enough that a host
 * which just came up is a candidate for the next create, short enough that one whose stats hang holds
 * creates back once, briefly, and then not at all.
 */
export const CAPACITY_GRACE_MS = 2000;

export interface RetryDelays {
  initialDelayMs: number;
  maxDelayMs: number;
}

/** Thrown values from the SDK are KindlingErrors; anything else is a bug and is not hidden in a partial result. */
export function kindlingOrRethrow(err: unknown): KindlingError {
  if (err instanceof KindlingError) return err;
  throw err;
}

/**
 * A fleet's handle on one agent: its link state, the backends its hello named, and a capacity cache
 * per backend, filled by a stats fetch on each (re)connect and kept current by the agent's
 * `capacity` pushes, so placement needs no round trip.
 */
export class Member implements FleetAgent {
  readonly url: string;
  readonly agent: Agent;
  /** The TLS options its Agent uses, for the health probe too. */
  readonly tls: TlsOptions | undefined;
  hostId: string | null = null;
  state: FleetAgentState = 'connecting';
  lastError: KindlingError | null = null;
  /** The configured backends, as of the last hello. */
  backends: Backend[] = [];
  /** Backend name → the last stats it fetched or pushed; absent when the backend cannot report (not ready). */
  readonly capacity = new Map<string, BackendStats>();
  /** Backend name → creations sent there by this fleet and not answered yet. */
  readonly pending = new Map<string, { gb: number; volumes: number }>();
  /**
   * Backend name → creations answered whose capacity push has not arrived: the reply comes before the
   * push, so without these a create right after another sees the stale figures and picks the same host.
   */
  readonly unseen = new Map<string, { gb: number; volumes: number }>();
  /** Settles once the capacity cache reflects the latest (re)connect. */
  capacityLoaded: Promise<void> = Promise.resolve();
  /** As `capacityLoaded`, but no later than CAPACITY_GRACE_MS after that fetch began. */
  capacityFresh: Promise<void> = Promise.resolve();
  #loads = 0;
  readonly #delays: RetryDelays;
  #delayMs: number;
  #retryTimer: NodeJS.Timeout | null = null;

  constructor(url: string, options: ConnectOptions, delays: RetryDelays) {
    this.url = url;
    this.agent = new Agent(url, options);
    this.tls = options.tls;
    this.#delays = delays;
    this.#delayMs = delays.initialDelayMs;
    this.agent.on('event', (frame) => {
      if (frame.event !== 'capacity') return;
      // Frames are handled one per turn (see Transport), so a create answered before this push has
      // been counted in `unseen` by now, and this push, sent after that reply, includes it.
      this.capacity.set(frame.resource.backendName, frame.resource);
      this.unseen.delete(frame.resource.backendName);
    });
    this.agent.on('disconnect', (error) => {
      if (this.state === 'closed') return;
      this.state = 'down';
      this.lastError = error;
    });
    // The Agent redials a link that dropped by itself; pushes sent meanwhile were missed.
    this.agent.on('reconnect', () => void this.#joined());
  }

  /** The first attempt; on failure the member stays `down` and retries with backoff, never rejecting. */
  async start(): Promise<void> {
    await this.#attempt();
  }

  /** Counts a creation against the backend until `release`, so parallel creates spread out. */
  reserve(backend: string, gb: number): void {
    const entry = this.pending.get(backend) ?? { gb: 0, volumes: 0 };
    this.pending.set(backend, { gb: entry.gb + gb, volumes: entry.volumes + 1 });
  }

  /** Ends a reservation; `made`: the agent answered with the volume, so it counts until the next capacity push. */
  release(backend: string, gb: number, made: boolean): void {
    const entry = this.pending.get(backend);
    if (!entry) return;
    if (entry.volumes <= 1) this.pending.delete(backend);
    else this.pending.set(backend, { gb: entry.gb - gb, volumes: entry.volumes - 1 });
    if (!made) return;
    const seen = this.unseen.get(backend) ?? { gb: 0, volumes: 0 };
    this.unseen.set(backend, { gb: seen.gb + gb, volumes: seen.volumes + 1 });
  }

  /** GiB and volumes placement counts against a backend beyond its cached capacity. */
  inFlight(backend: string): { gb: number; volumes: number } {
    const pending = this.pending.get(backend);
    const unseen = this.unseen.get(backend);
    return { gb: (pending?.gb ?? 0) + (unseen?.gb ?? 0), volumes: (pending?.volumes ?? 0) + (unseen?.volumes ?? 0) };
  }

  /** Why a call cannot go to it now. */
  unavailable(): KindlingError {
    return this.lastError ?? new UnavailableError(`the agent at ${this.url} is ${this.state}`);
  }

  async close(): Promise<void> {
    this.state = 'closed';
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    await this.agent.close();
  }

  async #attempt(): Promise<void> {
    try {
      await this.agent.open();
    } catch (err) {
      if (this.state === 'closed') return;
      this.state = 'down';
      this.lastError = kindlingOrRethrow(err);
      this.#scheduleRetry();
      return;
    }
    await this.#joined();
  }

  #scheduleRetry(): void {
    const delay = this.#delayMs;
    this.#delayMs = Math.min(delay * 2, this.#delays.maxDelayMs);
    // Jitter, so that a fleet does not hammer an agent that comes back in lockstep with other clients.
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.#attempt();
    }, delay * (0.5 + Math.random() / 2));
    // A dead agent alone must not keep the process alive.
    this.#retryTimer.unref();
  }

  async #joined(): Promise<void> {
    if (this.state === 'closed') return;
    this.hostId = this.agent.hostId;
    this.backends = await this.agent.backends();
    this.state = 'up';
    this.lastError = null;
    this.#delayMs = this.#delays.initialDelayMs;
    // Not awaited: joining (and so Fleet.connect) must not wait for a share that hangs its stats;
    // placement waits for it, within the read deadline.
    this.capacityLoaded = this.#loadCapacity();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CAPACITY_GRACE_MS);
      timer.unref();
    });
    this.capacityFresh = Promise.race([this.capacityLoaded.finally(() => clearTimeout(timer)), grace]);
  }

  /** A stats fetch after a (re)connect has not answered yet. */
  get loadingCapacity(): boolean {
    return this.#loads > 0;
  }

  async #loadCapacity(): Promise<void> {
    this.#loads++;
    await Promise.all(
      this.backends.map(async (backend) => {
        try {
          this.capacity.set(backend.name, await backend.stats());
          this.unseen.delete(backend.name);
        } catch (err) {
          kindlingOrRethrow(err);
          // A backend that cannot report (not ready) is no place for a volume.
          this.capacity.delete(backend.name);
        }
      }),
    ).finally(() => this.#loads--);
  }
}
