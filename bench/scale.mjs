// Scale (`pnpm bench scale`, issue 19): one agent holding N volumes (1k and 10k; 100k with --full), written
// straight into its index with matching sparse files on a local-folder share. Figures only, never asserted.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent } from '@kindling/sdk';
import { relayTo, startAgentProcess, writeVolumeDataset } from '@kindling/agent/testing';
import { fmt, pct, sized } from './stats.mjs';

const CLI_BIN = resolve(import.meta.dirname, '../packages/cli/dist/bin.js');
// SCALE_BENCH_VOLUMES=100000: one size only.
const COUNTS = process.env.SCALE_BENCH_VOLUMES ? [Number(process.env.SCALE_BENCH_VOLUMES)] : sized({ quick: [200], default: [1_000, 10_000], full: [1_000, 10_000, 100_000] });
const GETS = sized({ quick: 5, default: 200, full: 500 });
// Two metadata keys: ~500 bytes a record on the wire, a typical volume.
const metadata = { owner: 'team-storage', purpose: 'scale-bench' };

const rssMiB = async (pid) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
/** Samples the agent's RSS every 50 ms until `peak()` is read: V8 frees late, so a peak is what a host must hold. */
function peakRss(pid) {
  let peak = 0;
  const timer = setInterval(() => void rssMiB(pid).then((r) => (peak = Math.max(peak, r)), () => undefined), 50);
  return {
    peak: async () => {
      clearInterval(timer);
      return Math.max(peak, await rssMiB(pid)).toFixed(0);
    },
  };
}
const since = (t0) => performance.now() - t0;
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** `kindling volume list -o jsonl` against the agent: how many lines, and how long. */
async function cliList(url) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI_BIN, '--url', url, 'volume', 'list', '-o', 'jsonl'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let lines = 0;
  createInterface({ input: child.stdout }).on('line', () => lines++);
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`kindling volume list exited with ${code}`);
  return { lines, ms: since(t0) };
}

/** Sorted times of `n` sequential calls. */
async function times(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(since(t0));
  }
  return out.sort((a, b) => a - b);
}

async function one(say, count) {
  let proc = await startAgentProcess({
    // Info: the check after ready logs when it is done (reads log at debug, so gets are not slowed).
    args: ['--log-level', 'info'],
    backends: (dir) => [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'raw', sparse: true, maxOverSubscriptionRatio: 1e6 }],
  });
  try {
    await proc.stop();
    let t0 = performance.now();
    const { ids } = await writeVolumeDataset(join(proc.dir, 'data'), count, { share: join(proc.dir, 'share'), metadata });
    say(`  ${count.toLocaleString('en')} volumes (dataset written in ${secs(since(t0))})`);
    t0 = performance.now();
    proc = await proc.restart();
    // The first start on a dataset just written in bulk (LevelDB still compacting it): not a clean stop's figure, see below.
    say(`    first start on the dataset          ${secs(since(t0))}; RSS ${(await rssMiB(proc.child.pid)).toFixed(0)} MiB`);

    const listingPeak = peakRss(proc.child.pid);
    const relay = await relayTo(proc.url);
    const agent = await Agent.connect(relay.url);
    const nfs = await agent.backend('nfs');
    t0 = performance.now();
    const listed = await nfs.volumes();
    say(`    list all, SDK volumes()            ${secs(since(t0))} (${listed.length.toLocaleString('en')} volumes, ${mib(relay.sent())} received)`);
    const cli = await cliList(proc.url);
    say(`    list all, kindling volume list -o jsonl  ${secs(cli.ms)} (${cli.lines.toLocaleString('en')} lines)`);
    const byId = await times(GETS, (i) => nfs.volumesFiltered({ volumeId: ids[(i * 7919) % count] }));
    const byName = await times(GETS, (i) => nfs.volumesFiltered({ volumeName: `vol-${(i * 7919) % count}` }));
    say(`    get by id    p50 ${fmt(pct(byId, 50)).padStart(10)}   p99 ${fmt(pct(byId, 99)).padStart(10)}`);
    say(`    get by name  p50 ${fmt(pct(byName, 50)).padStart(10)}   p99 ${fmt(pct(byName, 99)).padStart(10)}`);
    // A reconnect of a client holding every volume: what it reads to bring its objects up to date.
    const before = relay.sent();
    t0 = performance.now();
    const resynced = once(agent, 'reconnect');
    relay.cutAll();
    await resynced;
    say(`    SDK reconnect resync (holding all)  ${secs(since(t0))}, ${mib(relay.sent() - before)} received`);
    say(`    agent RSS after listing            ${(await rssMiB(proc.child.pid)).toFixed(0)} MiB (peak from start ${await listingPeak.peak()} MiB)`);
    await agent.close();
    await relay.close();

    await proc.kill();
    t0 = performance.now();
    proc = await proc.restart();
    say(`    start to ready after a kill (SIGKILL)  ${secs(since(t0))}; RSS ${(await rssMiB(proc.child.pid)).toFixed(0)} MiB`);
    const checkPeak = peakRss(proc.child.pid);
    await proc.logged(/"msg":"storage check of nfs after ready done/);
    say(`    storage check after ready done     ${secs(since(t0))}; RSS ${(await rssMiB(proc.child.pid)).toFixed(0)} MiB (peak ${await checkPeak.peak()} MiB)`);

    t0 = performance.now();
    await proc.stop();
    say(`    stop (check done)                  ${secs(since(t0))}`);
    t0 = performance.now();
    proc = await proc.restart();
    say(`    start to ready after a clean stop   ${secs(since(t0))}; RSS ${(await rssMiB(proc.child.pid)).toFixed(0)} MiB`);
    // Right after ready the check after ready is reading storage: a stop ends it (the next start owes the scan).
    t0 = performance.now();
    await proc.stop();
    say(`    stop during the storage check after ready  ${secs(since(t0))}`);
  } finally {
    await proc.dispose();
  }
}

export async function scale(say) {
  say(`scale: one agent holding ${COUNTS.map((n) => n.toLocaleString('en')).join(', ')} volumes (nfs, raw sparse files on a local folder)`);
  for (const count of COUNTS) await one(say, count);
}
