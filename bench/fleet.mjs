// Fleet benchmark: fleet.health() and fleet.volumes() over 50 agent processes on loopback, each with
// its own data dir and share holding 1,000 indexed volumes. `node bench/fleet.mjs` after `npx tsc -b`
// (`pnpm bench` runs it too). Stops by itself and removes every process and temp dir it made.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Fleet } from '@kindling/sdk';
import { fleetAtScale } from './fleet-scale.mjs';
import { fmt, pct, sample, sized } from './stats.mjs';

// The targets are for 50 × 1,000 (`--full`); env overrides either figure.
const AGENTS = Number(process.env.FLEET_BENCH_AGENTS ?? sized({ quick: 2, default: 8, full: 50 }));
const VOLUMES = Number(process.env.FLEET_BENCH_VOLUMES ?? sized({ quick: 10, default: 100, full: 1000 }));
const RUNS = sized({ quick: 3, default: 20, full: 20 });
const AGENT_BIN = resolve(import.meta.dirname, '../packages/agent/dist/bin.js');
const GiB = 1024 ** 3;
// The agent takes KINDLING_TOKEN before its config file: under `pnpm bench` that is the bench's client
// token, so the fleet must present that one (a fixed token here left every agent refusing: "0 of 50 up").
const TOKEN = process.env.KINDLING_TOKEN ?? 'fleet-bench-token-0123456789';

const root = await mkdtemp(join(tmpdir(), 'kindling-fleet-bench-'));
const children = [];
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;

/**
 * An agent whose NFS share already holds `VOLUMES` raw sparse volume files (what the driver makes with
 * `truncate`), indexed by `kindling-agent reindex` before it starts: the index is rebuilt from storage,
 * as after a lost data dir, in seconds rather than 50,000 creates.
 */
async function startAgent(i) {
  const dir = join(root, `agent-${i}`);
  const share = join(dir, 'share');
  await mkdir(share, { recursive: true });
  for (let v = 0; v < VOLUMES; v++) {
    const file = await open(join(share, `volume-${randomUUID()}`), 'w');
    await file.truncate(GiB);
    await file.close();
  }
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    dataDir: join(dir, 'data'),
    token: TOKEN,
    backends: [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'raw', sparse: true, maxOverSubscriptionRatio: 100 }],
  };
  await writeFile(join(dir, 'agent.json'), JSON.stringify(config));
  // Exit 1: it found (and added) what the index lacked, which is the point here.
  const reindexed = await new Promise((res) => {
    const reindex = spawn(process.execPath, [AGENT_BIN, 'reindex', '--config', join(dir, 'agent.json')], { stdio: 'ignore' });
    reindex.once('exit', res);
  });
  if (reindexed !== 1) throw new Error(`reindex of agent ${i} exited with ${reindexed}`);
  const child = spawn(process.execPath, [AGENT_BIN, '--config', join(dir, 'agent.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  // Fifty agents' notices would bury the table; shown only if one fails to start.
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  return new Promise((res, rej) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('{"event":"listening"')) res(JSON.parse(line).url);
    });
    child.once('exit', (code) => rej(new Error(`agent ${i} exited with ${code} before listening:\n${stderr}`)));
  });
}

/** `fn` over 0..n-1, `limit` at a time. */
async function each(n, limit, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

async function cleanup() {
  await Promise.all(
    children.map(
      (child) =>
        new Promise((res) => {
          if (child.exitCode !== null || child.signalCode !== null) return res();
          child.once('exit', res);
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        }),
    ),
  );
  await rm(root, { recursive: true, force: true });
}

async function main() {
  console.log(`fleet: ${AGENTS} agents on loopback, ${VOLUMES} volumes each (NFS raw sparse), ${RUNS} runs per call`);
  const urls = new Array(AGENTS);
  await each(AGENTS, 8, async (i) => (urls[i] = await startAgent(i)));
  
  console.log(`  ${AGENTS * VOLUMES} volumes indexed and served after ${elapsed()}`);
  const setup = elapsed();

  const fleet = await Fleet.connect(urls, { token: TOKEN });
  try {
    const up = fleet.agents.filter((a) => a.state === 'up').length;
    if (up !== AGENTS) {
      const why = fleet.agents.find((a) => a.state !== 'up')?.lastError?.message;
      throw new Error(`only ${up} of ${AGENTS} agents up (first not up: ${why})`);
    }
    const first = performance.now();
    const listed = await fleet.volumes();
    const firstMs = performance.now() - first;
    if (listed.volumes.length !== AGENTS * VOLUMES || listed.failed.length > 0) {
      throw new Error(`volumes(): ${listed.volumes.length} volumes, ${listed.failed.length} failed`);
    }
    const health = await fleet.health();
    if (!health.every((h) => h.ready)) throw new Error('health(): not every agent is ready');

    const healthTimes = await sample(RUNS, () => fleet.health(), 2);
    // This process's CPU per volumes() (decoding, identity map): the SDK's share of the wall time.
    const cpu0 = process.cpuUsage();
    const volumeTimes = await sample(RUNS, () => fleet.volumes(), 2);
    const cpu = process.cpuUsage(cpu0);
    const sdkCpuMs = (cpu.user + cpu.system) / 1000 / (RUNS + 2);
    // Where volumes() time goes: one agent answering alone, the floor under the fan-out.
    const one = await fleet.agents[0].agent.backend('nfs');
    const oneTimes = await sample(RUNS, () => one.volumes(), 2);

    const rows = [
      ['fleet.health()', healthTimes, 100],
      ['fleet.volumes()', volumeTimes, 500],
      [`one agent's volumes() (${VOLUMES})`, oneTimes, null],
    ];
    console.log(`  ${'call'.padEnd(28)} ${'p50'.padStart(10)} ${'p95'.padStart(10)}  target`);
    for (const [label, times, target] of rows) {
      const p50 = pct(times, 50);
      const verdict = target === null ? '' : `< ${target} ms: ${pct(times, 95) < target ? 'met' : p50 < target ? 'p50 met, p95 over' : 'OVER'}`;
      console.log(`  ${label.padEnd(28)} ${fmt(p50).padStart(10)} ${fmt(pct(times, 95)).padStart(10)}  ${verdict}`);
    }
    console.log(`  fleet.volumes(): ${fmt(sdkCpuMs)} of SDK CPU per call; the first one (fresh identity maps) took ${fmt(firstMs)}`);
    console.log(`  setup took ${setup}, all ${elapsed()}`);
  } finally {
    await fleet.close();
  }
}

// Ctrl-C must not leave 50 agents behind.
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
let code = 0;
try {
  await main();
} catch (err) {
  console.error(`fleet bench failed: ${err instanceof Error ? err.message : String(err)}`);
  code = 1;
} finally {
  await cleanup();
}
// The 1,000-agent part runs once the agent processes are gone, so they do not weigh on its figures.
if (code === 0) {
  try {
    await fleetAtScale((line) => console.log(line));
  } catch (err) {
    console.error(`fleet bench failed: ${err instanceof Error ? err.message : String(err)}`);
    code = 1;
  }
}
process.exit(code);
