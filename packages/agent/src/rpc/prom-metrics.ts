import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { GIB, PROTOCOL_VERSION, type BackendStats } from '@kindling/protocol';
import type { BackendReadiness } from '../service/backends.js';
import { AGENT_VERSION } from '../version.js';

/** From a millisecond lookup to the longest thick copies and qcow2 conversions (hours). */
const LATENCY_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400];
/** Stats are in GiB with decimals; Prometheus wants bytes, whole. */
const bytes = (gib: number): number => Math.round(gib * GIB);

import type { Load, Refusal } from './metrics.js';

/** Backend stats' `extra` figures that have a family of their own; other keys are not exported. */
const EXTRAS: [key: string, name: string, help: string][] = [
  ['thinPoolDataPercent', 'kindling_backend_thin_pool_data_percent', 'Data space used in the LVM thin pool, in percent (as lvs data_percent).'],
  ['thinPoolMetadataPercent', 'kindling_backend_thin_pool_metadata_percent', 'Metadata space used in the LVM thin pool, in percent.'],
  ['vgMdaFreeBytes', 'kindling_backend_vg_mda_free_bytes', 'Free space in the volume group metadata area (vg_mda_free).'],
  ['vgMdaSizeBytes', 'kindling_backend_vg_mda_size_bytes', 'Size of the volume group metadata area (vg_mda_size).'],
];

/**
 * The agent's Prometheus families (prom-client, one registry per server so in-process agents do not
 * share counters). Counters and the latency histogram are fed as requests finish; gauges are set from
 * readiness, stats and load at each scrape.
 */
export class PromMetrics {
  readonly registry = new Registry();
  private readonly ops: Counter<'op' | 'outcome'>;
  private readonly latency: Histogram<'op'>;
  private readonly refusals: Counter<'reason'>;
  private readonly load: Record<keyof Load, Gauge>;
  private readonly perBackend: Gauge<'backend'>[] = [];
  private readonly ready: Gauge<'backend'>;
  private readonly warnings: Gauge<'backend'>;
  private readonly leftovers: Gauge<'backend'>;
  private readonly strays: Gauge<'backend'>;
  private readonly notInIndex: Gauge<'backend'>;
  private readonly notOnStorage: Gauge<'backend'>;
  private readonly capacity: Gauge<'backend'>;
  private readonly free: Gauge<'backend'>;
  private readonly provisioned: Gauge<'backend'>;
  private readonly volumes: Gauge<'backend'>;
  private readonly snapshots: Gauge<'backend'>;
  private readonly extras: [key: string, gauge: Gauge<'backend'>][];

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client's gauges named *_total fail `promtool check metrics`; nodejs_active_{handles,requests,resources} (by type) stay.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    new Gauge({
      name: 'kindling_build_info',
      help: 'Always 1; the labels say which agent build runs.',
      labelNames: ['version', 'protocol_version', 'node_version'],
      registers,
    }).set({ version: AGENT_VERSION, protocol_version: String(PROTOCOL_VERSION), node_version: process.version }, 1);
    this.ops = new Counter({
      name: 'kindling_ops_total',
      help: 'RPC operations answered, by op and outcome (ok, or the error code).',
      labelNames: ['op', 'outcome'],
      registers,
    });
    this.latency = new Histogram({
      name: 'kindling_op_duration_seconds',
      help: 'Time from a request frame to its reply, by op.',
      labelNames: ['op'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.refusals = new Counter({
      name: 'kindling_auth_refusals_total',
      help: 'Requests refused: bad_token (no or wrong credential), read_only (a change with a read token), host, origin.',
      labelNames: ['reason'],
      registers,
    });
    const gauge = (name: string, help: string) => new Gauge({ name, help, registers });
    this.load = {
      sessions: gauge('kindling_sessions', 'Connected RPC sessions.'),
      requestsInFlight: gauge('kindling_requests_in_flight', 'RPC requests being worked on.'),
      commandsRunning: gauge('kindling_commands_running', 'Storage commands running now.'),
      commandsWaiting: gauge('kindling_commands_waiting', 'Storage commands waiting for a slot (limits.commands, limits.copies).'),
    };
    const backendGauge = (name: string, help: string) => {
      const g = new Gauge({ name, help, labelNames: ['backend'] as const, registers });
      this.perBackend.push(g);
      return g;
    };
    this.ready = backendGauge('kindling_backend_ready', '1 when the backend is ready, 0 when not (see /readyz for why).');
    this.warnings = backendGauge('kindling_backend_warnings', 'Readiness warnings of the backend (e.g. VG metadata area nearly full).');
    this.leftovers = backendGauge('kindling_storage_leftovers', "Kindling's leftovers of interrupted operations that recovery could not remove at start.");
    this.strays = backendGauge('kindling_storage_strays', "Items on storage that are not provably Kindling's (last scan); reported, never removed.");
    this.notInIndex = backendGauge('kindling_storage_not_in_index', 'Volumes and snapshots on storage that the index lacks (last check; `reindex` adopts them).');
    this.notOnStorage = backendGauge('kindling_index_not_on_storage', 'Settled volumes and snapshots of the index that storage lacks (last check); reported, never removed.');
    this.capacity = backendGauge('kindling_backend_capacity_bytes', 'Total capacity of the backend.');
    this.free = backendGauge('kindling_backend_free_bytes', 'Free capacity of the backend.');
    this.provisioned = backendGauge('kindling_backend_provisioned_bytes', 'Capacity promised to volumes (their sizes), thin or not.');
    this.volumes = backendGauge('kindling_backend_volumes', 'Volumes of the backend in the index.');
    this.snapshots = backendGauge('kindling_backend_snapshots', 'Snapshots of the backend in the index.');
    this.extras = EXTRAS.map(([key, name, help]) => [key, backendGauge(name, help)]);
  }

  observe(op: string, outcome: string, seconds: number): void {
    this.ops.inc({ op, outcome });
    this.latency.observe({ op }, seconds);
  }

  refused(reason: Refusal): void {
    this.refusals.inc({ reason });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, with gauges set from what the agent reads now. */
  async render(stats: BackendStats[], readiness: BackendReadiness[], load: Load): Promise<string> {
    for (const [key, g] of Object.entries(this.load) as [keyof Load, Gauge][]) g.set(load[key]);
    // A backend removed from the config must not linger with its last values.
    for (const g of this.perBackend) g.reset();
    for (const r of readiness) {
      const backend = r.name;
      this.ready.set({ backend }, r.ready ? 1 : 0);
      this.warnings.set({ backend }, r.warnings?.length ?? 0);
      if (r.findings) {
        this.leftovers.set({ backend }, r.findings.leftovers);
        this.strays.set({ backend }, r.findings.strays);
        this.notInIndex.set({ backend }, r.findings.missingFromIndex ?? 0);
        this.notOnStorage.set({ backend }, r.findings.missingFromStorage ?? 0);
      }
    }
    for (const s of stats) {
      const backend = s.backendName;
      this.capacity.set({ backend }, bytes(s.totalCapacityGb));
      this.free.set({ backend }, bytes(s.freeCapacityGb));
      this.provisioned.set({ backend }, bytes(s.provisionedCapacityGb));
      this.volumes.set({ backend }, s.totalVolumes);
      this.snapshots.set({ backend }, s.totalSnapshots);
      for (const [key, g] of this.extras) {
        const value = s.extra?.[key];
        if (typeof value === 'number') g.set({ backend }, value);
      }
    }
    return this.registry.metrics();
  }
}
