import {
  Fleet,
  InvalidArgumentError,
  UnavailableError,
  type AgentFailure,
  type AgentHealth,
  type Backend,
  type FleetAgent,
  type FleetCreateVolumeOptions,
  type KindlingError,
  type Snapshot,
  type Volume,
} from '@kindling/sdk';
import { agentSpec, explain, fleetOptions } from './links.js';
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
  readonly #fleet: Fleet;
  readonly #io: ScopeIo;
  #partial = false;
  readonly #warned = new Set<string>();

  private constructor(settings: Settings, fleet: Fleet, io: ScopeIo) {
    this.settings = settings;
    this.#fleet = fleet;
    this.#io = io;
    this.out = io.out;
    this.progress = io.progress;
    this.showSecrets = io.showSecrets;
  }

  /**
   * One agent is a fleet of one, so every command has one code path. Connecting is the hello only (no
   * backend stats), so one hung share cannot hold a command that does not ask about it; it never
   * rejects for a dead agent.
   */
  static async open(settings: Settings, io: ScopeIo): Promise<Scope> {
    const fleet = await Fleet.connect(settings.urls.map((url) => agentSpec(settings, url)), fleetOptions(settings));
    return new Scope(settings, fleet, io);
  }

  /** Some agents did not answer: the exit status says so even though a result was printed. */
  get partial(): boolean {
    return this.#partial;
  }

  /** Every agent asked for, up or not. */
  get agents(): readonly FleetAgent[] {
    return this.#fleet.agents;
  }

  /** The agents that did not answer, as failures (none when all are up). */
  down(): AgentFailure[] {
    return this.agents.filter((a) => a.state !== 'up').map((a) => ({ url: a.url, hostId: a.hostId, error: this.#why(a) }));
  }

  /** The agents that answered (a warning for each that did not). Against one agent, its failure is the command's failure. */
  up(): FleetAgent[] {
    this.failed(this.down());
    return this.agents.filter((a) => a.state === 'up');
  }

  /** The agent a resource lives on. */
  agentOf(resource: Volume | Snapshot | Backend): AgentRef {
    const { url, hostId } = this.#fleet.agentOf(resource);
    return { url, hostId };
  }

  /** For commands about one agent's own state (kv): refused over a fleet of more than one. */
  single(what: string): FleetAgent {
    const [only, ...more] = this.agents;
    if (!only || more.length > 0) throw new InvalidArgumentError(`${what} talks to one agent: give --url, not a fleet`);
    if (only.state !== 'up') throw this.#why(only);
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

  /** A volume where the SDK's placement puts it: the most room over every agent that answered, ties to the fewest volumes. */
  async createPlaced(options: FleetCreateVolumeOptions & { size: number }): Promise<Volume> {
    // Warns for each agent down; against one agent, its failure is the command's.
    if (this.up().length === 0) throw new UnavailableError('no agent answered', { down: this.down().map((f) => f.url) });
    return this.#fleet.createVolume(options);
  }

  /** Each agent's link and `/readyz`, in the order given; an agent that could not be reached says why. */
  async health(): Promise<AgentHealth[]> {
    const reports = await this.#fleet.health();
    return reports.map((report) => (report.lastError ? { ...report, lastError: explain(report.url, this.settings.tokens[report.url], report.lastError) } : report));
  }

  async close(): Promise<void> {
    await this.#fleet.close();
  }

  /** Why an agent did not answer, with the CLI's fix for a common slip. */
  #why(agent: FleetAgent): KindlingError {
    return explain(agent.url, this.settings.tokens[agent.url], agent.lastError ?? new UnavailableError(`the agent at ${agent.url} is ${agent.state}`));
  }
}
