import type { BackendStats } from '@kindling/protocol';
import type { BackendReadiness } from '../service/backends.js';
import type { PromMetrics } from './prom-metrics.js';

/** How busy the agent is at scrape time. */
export interface Load {
  sessions: number;
  requestsInFlight: number;
  commandsRunning: number;
  commandsWaiting: number;
}

/** Why a request was refused before it reached an op. */
export type Refusal = 'bad_token' | 'read_only' | 'host' | 'origin';

/** prom-client loads this long after start at the latest (or at the first scrape, if sooner). */
const LOAD_AFTER_MS = 5000;

/**
 * The agent's Prometheus metrics (prom-metrics.ts), with prom-client loaded off the start-up path: it
 * costs a sixth of a second to import, and ready must come sooner (issue 20). Until it is loaded, what
 * requests report waits in `early` (a few seconds' worth at most) and is replayed once it is.
 */
export class Metrics {
  private prom: PromMetrics | null = null;
  private loading: Promise<PromMetrics> | null = null;
  /**
   * Column by column, not a closure per request: a closure kept for seconds made every request of an
   * agent's first seconds (a bench, clients resyncing after a restart) dearer in young-generation GC.
   */
  private early: Early = { ops: [], outcomes: [], seconds: [], refusals: [] };

  constructor() {
    setTimeout(() => void this.load(), LOAD_AFTER_MS).unref();
  }

  private load(): Promise<PromMetrics> {
    this.loading ??= import('./prom-metrics.js').then(({ PromMetrics }) => {
      const prom = new PromMetrics();
      const early = this.early;
      early.ops.forEach((op, i) => prom.observe(op, early.outcomes[i] as string, early.seconds[i] as number));
      for (const reason of early.refusals) prom.refused(reason);
      this.early = { ops: [], outcomes: [], seconds: [], refusals: [] };
      this.prom = prom;
      return prom;
    });
    return this.loading;
  }

  observe(op: string, outcome: string, seconds: number): void {
    if (this.prom) this.prom.observe(op, outcome, seconds);
    else {
      this.early.ops.push(op);
      this.early.outcomes.push(outcome);
      this.early.seconds.push(seconds);
    }
  }

  refused(reason: Refusal): void {
    if (this.prom) this.prom.refused(reason);
    else this.early.refusals.push(reason);
  }

  /** The exposition format's content type: known once render() has run (the /metrics handler reads it after). */
  get contentType(): string {
    if (!this.prom) throw new Error('metrics: contentType before the first render');
    return this.prom.contentType;
  }

  /** The exposition text, with gauges set from what the agent reads now. */
  async render(stats: BackendStats[], readiness: BackendReadiness[], load: Load): Promise<string> {
    return (await this.load()).render(stats, readiness, load);
  }
}

/** Requests reported before prom-client was loaded: op, outcome and seconds of each, at one index. */
interface Early {
  ops: string[];
  outcomes: string[];
  seconds: number[];
  refusals: Refusal[];
}
