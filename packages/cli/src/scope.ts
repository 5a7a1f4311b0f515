import { Fleet, InvalidArgumentError, UnavailableError, type AgentFailure, type FleetAgent } from '@kindling/sdk';
import type { Output } from './output.js';
import type { Settings } from './settings.js';

/** What a command runs against: the agents (one, or a fleet), how to print, and what went partly wrong. */
export class Scope {
  readonly fleet: Fleet;
  readonly settings: Settings;
  readonly out: Output;
  /** Draw progress bars: stderr is a terminal and they were not turned off. */
  readonly progress: boolean;
  readonly #warn: (line: string) => void;
  #partial = false;
  readonly #warned = new Set<string>();

  private constructor(fleet: Fleet, settings: Settings, out: Output, progress: boolean, warn: (line: string) => void) {
    this.fleet = fleet;
    this.settings = settings;
    this.out = out;
    this.progress = progress;
    this.#warn = warn;
  }

  /** One agent is a fleet of one, so every command has one code path; it never rejects for a dead agent. */
  static async open(settings: Settings, out: Output, progress: boolean, warn: (line: string) => void): Promise<Scope> {
    // No background redial worth waiting for in a one-shot command: a failed first attempt is the answer.
    const fleet = await Fleet.connect(settings.urls, {
      token: settings.token,
      timeoutMs: settings.timeoutMs,
      reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    return new Scope(fleet, settings, out, progress, warn);
  }

  /** Some agents did not answer: the exit status says so even though a result was printed. */
  get partial(): boolean {
    return this.#partial;
  }

  /** The agents that answered. Against one agent, its failure is the command's failure. */
  up(): FleetAgent[] {
    const agents = this.fleet.agents;
    this.failed(agents.filter((a) => a.state !== 'up').map((a) => ({ url: a.url, hostId: a.hostId, error: a.lastError ?? downError(a) })));
    return agents.filter((a) => a.state === 'up');
  }

  /** For commands about one agent's own state (kv): refused over a fleet of more than one. */
  single(what: string): FleetAgent {
    const [only, ...more] = this.fleet.agents;
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
      if (!this.#warned.has(line)) this.#warn(line);
      this.#warned.add(line);
    }
  }

  async close(): Promise<void> {
    await this.fleet.close();
  }
}

const downError = (a: FleetAgent) => new UnavailableError(`the agent at ${a.url} is ${a.state}`);
