import {
  Fleet,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  type AgentFailure,
  type AgentHealth,
  type Backend,
  type FleetAgent,
  type FleetCreateVolumeOptions,
  Snapshot,
  Volume,
} from '@kindling/sdk';
import { connectOptions, explain, Link } from './links.js';
import type { Output } from './output.js';
import type { AgentRef } from './records.js';
import type { Settings } from './settings.js';

/** What a command is given besides its settings: how to print, warn and ask. */
export interface ScopeIo {
  out: Output;
  /** Draw progress bars: stderr is a terminal and they were not turned off. */
  progress: boolean;
  /** Print secrets (CHAP credentials) in connection records: `--show-secrets`. */
  showSecrets: boolean;
  warn(line: string): void;
  /** Asks on the terminal; resolves with the answer. */
  ask(question: string): Promise<string>;
}

/** What a command runs against: the agents (one, or a fleet), how to print, and what went partly wrong. */
export class Scope {
  readonly settings: Settings;
  readonly out: Output;
  readonly progress: boolean;
  readonly showSecrets: boolean;
  readonly #links: Link[];
  readonly #io: ScopeIo;
  /** Fleets made for placement and health, which need the agents' capacity; closed with the scope. */
  readonly #fleets: Fleet[] = [];
  #partial = false;
  readonly #warned = new Set<string>();

  private constructor(settings: Settings, links: Link[], io: ScopeIo) {
    this.settings = settings;
    this.#links = links;
    this.#io = io;
    this.out = io.out;
    this.progress = io.progress;
    this.showSecrets = io.showSecrets;
  }

  /** One agent is a fleet of one, so every command has one code path; it never rejects for a dead agent. */
  static async open(settings: Settings, io: ScopeIo): Promise<Scope> {
    const links = settings.urls.map((url) => new Link(url, settings));
    await Promise.all(links.map((l) => l.open()));
    return new Scope(settings, links, io);
  }

  /** Some agents did not answer: the exit status says so even though a result was printed. */
  get partial(): boolean {
    return this.#partial;
  }

  /** Every agent asked for, up or not. */
  get agents(): readonly FleetAgent[] {
    return this.#links;
  }

  /** The agents that did not answer, as failures (none when all are up). */
  down(): AgentFailure[] {
    return this.#links.filter((a) => a.state !== 'up').map((a) => ({ url: a.url, hostId: a.hostId, error: a.lastError ?? downError(a) }));
  }

  /** The agents that answered (a warning for each that did not). Against one agent, its failure is the command's failure. */
  up(): FleetAgent[] {
    this.failed(this.down());
    return this.#links.filter((a) => a.state === 'up');
  }

  /** The agent a resource lives on. */
  agentOf(resource: Volume | Snapshot | Backend): AgentRef {
    const backend = resource instanceof Volume ? resource.backend : resource instanceof Snapshot ? resource.volume.backend : resource;
    const link = this.#links.find((l) => l.agent === backend.agent);
    if (!link) throw new NotFoundError(`backend ${backend.name} is not on one of this command's agents`);
    return { url: link.url, hostId: link.hostId };
  }

  /** For commands about one agent's own state (kv): refused over a fleet of more than one. */
  single(what: string): FleetAgent {
    const [only, ...more] = this.#links;
    if (!only || more.length > 0) throw new InvalidArgumentError(`${what} talks to one agent: give --url, not a fleet`);
    if (only.state !== 'up') throw only.lastError ?? downError(only);
    return only;
  }

  /**
   * A fan-out's failures: a warning each and a partial exit status; but against one agent, that agent
   * not answering is the command's failure. One sick backend never hides what the others hold.
   */
  failed(failures: readonly AgentFailure[]): void {
    if (failures.length === 0) return;
    const agentDown = failures.find((f) => f.backend === undefined);
    if (!this.settings.fleet && agentDown) throw agentDown.error;
    this.#partial = true;
    for (const f of failures) {
      const line = `warning: ${f.url}${f.backend ? ` backend ${f.backend}` : ''}: ${f.error.code}: ${f.error.message}`;
      // A dead agent shows in every fan-out of one command: say so once.
      if (!this.#warned.has(line)) this.#io.warn(line);
      this.#warned.add(line);
    }
  }

  /** Asks before a change that destroys data, unless `--yes` said it is meant. */
  async confirm(yes: boolean | undefined, action: string): Promise<void> {
    if (yes === true) return;
    const answer = await this.#io.ask(`${action}? [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new InvalidArgumentError(`not confirmed: nothing was changed`);
  }

  /**
   * A volume where the fleet has most room. Placement needs every backend's capacity, so only this
   * command connects fleets (one per token: agents with tokens of their own are fleets of their own,
   * each offering its best backend).
   */
  async createPlaced(options: FleetCreateVolumeOptions & { size: number }): Promise<{ volume: Volume; agent: AgentRef }> {
    const fleets = await this.#fleetsByToken(this.#links.filter((l) => l.state === 'up').map((l) => l.url));
    if (fleets.length === 0) throw new UnavailableError('no agent answered', { down: this.down().map((f) => f.url) });
    // Each fleet's best room, -1 where nothing fits; with none fitting anywhere, the first fleet's own refusal says why.
    const room = await Promise.all(fleets.map((f) => f.place({ size: options.size, driver: options.driver }).then((p) => p.roomGb, () => -1)));
    const fleet = fleets[room.indexOf(Math.max(...room))]!;
    const volume = await fleet.createVolume(options);
    const agent = fleet.agentOf(volume);
    return { volume, agent: { url: agent.url, hostId: agent.hostId } };
  }

  /** Each agent's link and `/readyz`, in the order given; an agent that could not be reached says why. */
  async health(): Promise<AgentHealth[]> {
    const fleets = await this.#fleetsByToken(this.settings.urls, Math.min(this.settings.timeouts.shortMs, HEALTH_TIMEOUT_MS));
    const reports = (await Promise.all(fleets.map((f) => f.health()))).flat();
    return Promise.all(
      this.settings.urls.map(async (url) => {
        const report = reports.find((r) => r.url === url)!;
        if (report.state === 'up' || !report.lastError) return report;
        return { ...report, lastError: await explain(url, this.settings.tokens[url], report.lastError) };
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.#links.map((l) => l.agent.close()), ...this.#fleets.map((f) => f.close())]);
  }

  async #fleetsByToken(urls: string[], timeoutMs = this.settings.timeouts.shortMs): Promise<Fleet[]> {
    const groups = new Map<string | undefined, string[]>();
    for (const url of urls) groups.set(this.settings.tokens[url], [...(groups.get(this.settings.tokens[url]) ?? []), url]);
    const fleets = await Promise.all(
      [...groups].map(([token, group]) => Fleet.connect(group, { ...connectOptions(this.settings, token), timeoutMs })),
    );
    this.#fleets.push(...fleets);
    return fleets;
  }
}

/** Health is a probe: an agent that takes longer than this to say it is ready is not. */
const HEALTH_TIMEOUT_MS = 5000;

const downError = (a: FleetAgent) => new UnavailableError(`the agent at ${a.url} is ${a.state}`);
