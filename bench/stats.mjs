/** Timing helpers shared by the benchmarks: sequential samples, percentiles and a ratio line. */
export async function sample(n, fn, warmup = Math.min(50, n)) {
  for (let i = 0; i < warmup; i++) await fn(i);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times.sort((a, b) => a - b);
}

export const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

export function fmt(ms) {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`;
}

export function row(label, sorted) {
  return `  ${label.padEnd(44)} p50 ${fmt(pct(sorted, 50)).padStart(10)}   p95 ${fmt(pct(sorted, 95)).padStart(10)}   (n=${sorted.length})`;
}

export function ratio(label, ours, base, target) {
  const r = pct(ours, 50) / pct(base, 50);
  const verdict = r <= target ? 'within target' : 'OVER target';
  return `  ${label.padEnd(44)} ratio ${r.toFixed(2)}   (target <= ${target}: ${verdict})`;
}

/** Alternates two workloads sample by sample, so drift in machine load falls on both alike. */
export const samplePair = (n, a, b, warmup = 3) => sampleMany(n, [a, b], warmup);

/** Like samplePair for any number of workloads, the order rotating each round: sorted times per workload. */
export async function sampleMany(n, fns, warmup = 3) {
  for (let i = 0; i < warmup; i++) for (const fn of fns) await fn(-1 - i);
  const times = fns.map(() => []);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < fns.length; k++) {
      const j = (i + k) % fns.length;
      const t0 = process.hrtime.bigint();
      await fns[j](i);
      times[j].push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return times.map((t) => t.sort((x, y) => x - y));
}

/**
 * How big a run is: `quick` (the test that keeps the bench from rotting: every section runs and prints),
 * `default` (`pnpm bench`: a few minutes on a shared two-core machine), `full` (`--full`: the figures the
 * targets are written for). run.mjs passes it to the section scripts it spawns through the environment.
 */
const flag = ['quick', 'full'].find((s) => process.argv.includes(`--${s}`));
export const SCALE = flag ?? process.env.KINDLING_BENCH_SCALE ?? 'default';
process.env.KINDLING_BENCH_SCALE = SCALE;
export const sized = (sizes) => {
  if (!(SCALE in sizes)) throw new Error(`KINDLING_BENCH_SCALE must be quick, default or full, not ${SCALE}`);
  return sizes[SCALE];
};
