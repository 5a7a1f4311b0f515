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
 * requests report waits in `early` (a few seconds' worth at most) and is replayed in order.
 */
export class Metrics {
  private prom: PromMetrics | null = null;
  private loading: Promise<PromMetrics> | null = null;
  private early: ((prom: PromMetrics) => void)[] = [];

  constructor() {
    setTimeout(() => void this.load(), LOAD_AFTER_MS).unref();
  }

  private load(): Promise<PromMetrics> {
    this.loading ??= import('./prom-metrics.js').then(({ PromMetrics }) => {
      const prom = new PromMetrics();
      for (const replay of this.early) replay(prom);
      this.early = [];
      this.prom = prom;
      return prom;
    });
    return this.loading;
  }

  private report(fn: (prom: PromMetrics) => void): void {
    if (this.prom) fn(this.prom);
    else this.early.push(fn);
  }

  observe(op: string, outcome: string, seconds: number): void {
    this.report((prom) => prom.observe(op, outcome, seconds));
  }

  refused(reason: Refusal): void {
    this.report((prom) => prom.refused(reason));
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
