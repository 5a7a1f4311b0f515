import type { BackendStats } from '@kindling/protocol';
import type { BackendReadiness } from '../service/backends.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

const label = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const snake = (name: string): string => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();

/** Op counters and latency histograms, rendered as Prometheus text with capacity gauges read at scrape time. */
export class Metrics {
  private readonly ops = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();

  observe(op: string, outcome: string, seconds: number): void {
    const key = `${op}\u0000${outcome}`;
    this.ops.set(key, (this.ops.get(key) ?? 0) + 1);
    let h = this.latency.get(op);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(op, h);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= (BUCKETS[i] as number)) (h.counts[i] as number)++;
    h.sum += seconds;
    h.count++;
  }

  render(stats: BackendStats[], readiness: BackendReadiness[], sessions: number): string {
    const out: string[] = [];
    out.push('# HELP kindling_ops_total RPC operations by op and outcome (ok or error code).');
    out.push('# TYPE kindling_ops_total counter');
    for (const [key, n] of this.ops) {
      const [op, outcome] = key.split('\u0000') as [string, string];
      out.push(`kindling_ops_total{op="${label(op)}",outcome="${label(outcome)}"} ${n}`);
    }
    out.push('# HELP kindling_op_duration_seconds RPC operation latency.');
    out.push('# TYPE kindling_op_duration_seconds histogram');
    for (const [op, h] of this.latency) {
      BUCKETS.forEach((le, i) => out.push(`kindling_op_duration_seconds_bucket{op="${label(op)}",le="${le}"} ${h.counts[i]}`));
      out.push(`kindling_op_duration_seconds_bucket{op="${label(op)}",le="+Inf"} ${h.count}`);
      out.push(`kindling_op_duration_seconds_sum{op="${label(op)}"} ${h.sum}`);
      out.push(`kindling_op_duration_seconds_count{op="${label(op)}"} ${h.count}`);
    }
    out.push('# HELP kindling_sessions Connected RPC sessions.', '# TYPE kindling_sessions gauge', `kindling_sessions ${sessions}`);
    out.push('# HELP kindling_backend_ready 1 when the backend is ready.', '# TYPE kindling_backend_ready gauge');
    for (const r of readiness) out.push(`kindling_backend_ready{backend="${label(r.name)}"} ${r.ready ? 1 : 0}`);
    out.push('# HELP kindling_backend_warnings Readiness warnings (e.g. VG metadata area nearly full).');
    out.push('# TYPE kindling_backend_warnings gauge');
    for (const r of readiness) out.push(`kindling_backend_warnings{backend="${label(r.name)}"} ${r.warnings?.length ?? 0}`);
    const storage: [string, string, (f: { leftovers: number; strays: number }) => number][] = [
      ['kindling_storage_leftovers', "Kindling's leftovers of interrupted operations that recovery could not remove at start.", (f) => f.leftovers],
      ['kindling_storage_strays', "Items on storage that are not provably Kindling's (last scan); reported, never removed.", (f) => f.strays],
    ];
    for (const [name, help, value] of storage) {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const r of readiness) if (r.findings) out.push(`${name}{backend="${label(r.name)}"} ${value(r.findings)}`);
    }
    const gauges: [string, string, (s: BackendStats) => number][] = [
      ['kindling_backend_capacity_total_gb', 'Total capacity in GiB.', (s) => s.totalCapacityGb],
      ['kindling_backend_capacity_free_gb', 'Free capacity in GiB.', (s) => s.freeCapacityGb],
      ['kindling_backend_capacity_provisioned_gb', 'Provisioned capacity in GiB.', (s) => s.provisionedCapacityGb],
      ['kindling_backend_volumes', 'Volumes in the index.', (s) => s.totalVolumes],
      ['kindling_backend_snapshots', 'Snapshots in the index.', (s) => s.totalSnapshots],
    ];
    for (const [name, help, value] of gauges) {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const s of stats) out.push(`${name}{backend="${label(s.backendName)}"} ${value(s)}`);
    }
    const extras = new Map<string, string[]>();
    for (const s of stats) {
      for (const [key, value] of Object.entries(s.extra ?? {})) {
        if (typeof value !== 'number') continue;
        const name = `kindling_backend_${snake(key)}`;
        extras.set(name, [...(extras.get(name) ?? []), `${name}{backend="${label(s.backendName)}"} ${value}`]);
      }
    }
    for (const [name, lines] of extras) out.push(`# TYPE ${name} gauge`, ...lines);
    return `${out.join('\n')}\n`;
  }
}
