// Load benchmark (`pnpm bench load`, `pnpm bench index`): figures only, never asserted.
//  load:  20 clients with 100 requests in flight each, mixed operations on NFS (and LVM on a loop VG when
//         root): throughput, p50/p99 by op, agent RSS peak, commands running peak.
//  index: one agent holding 100,000 indexed volumes: start to ready, RSS, volumesFiltered by name and by id.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent } from '@kindling/sdk';
import { createLoopVg, loopVgUnavailable, startAgentProcess } from '@kindling/agent/testing';
import { fmt, pct, sized } from './stats.mjs';

const CLIENTS = sized({ quick: 2, default: 10, full: 20 });
const IN_FLIGHT = sized({ quick: 4, default: 25, full: 100 });
const PER_CLIENT = Number(process.env.LOAD_BENCH_PER_CLIENT ?? sized({ quick: 8, default: 40, full: 300 }));
const INDEXED = Number(process.env.INDEX_BENCH_VOLUMES ?? sized({ quick: 100, default: 3_000, full: 100_000 }));
const AGENT_BIN = resolve(import.meta.dirname, '../packages/agent/dist/bin.js');

const rssMiB = async (pid) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
const gauge = async (port, name) => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${process.env.KINDLING_TOKEN}` } });
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await res.text())?.[1] ?? 0);
};

/** Samples the agent's RSS and running commands until stopped; returns the peaks. */
function watch(proc) {
  const peak = { rss: 0, commands: 0 };
  let on = true;
  const done = (async () => {
    while (on) {
      peak.rss = Math.max(peak.rss, await rssMiB(proc.child.pid));
      peak.commands = Math.max(peak.commands, await gauge(proc.port, 'kindling_commands_running'));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return async () => {
    on = false;
    await done;
    return peak;
  };
}

export async function load() {
  const lvmWhy = loopVgUnavailable();
  const vg = lvmWhy ? null : await createLoopVg({ sizeMiB: 1048576 });
  const backends = (dir) => [
    { name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'qcow2', maxOverSubscriptionRatio: 100 },
    ...(vg ? [{ name: 'lvm', driver: 'lvm', volumeGroup: vg.vg, lvmConfFile: vg.lvmConfFile, volumeClear: 'none' }] : []),
  ];
  console.log(`load: ${CLIENTS} clients x ${IN_FLIGHT} in flight, ${PER_CLIENT} requests each, on nfs${vg ? ' and lvm (loop VG)' : ` (lvm skipped: ${lvmWhy})`}`);
  const proc = await startAgentProcess({ backends });
  const stop = watch(proc);
  const times = new Map();
  const note = (op, ms) => (times.get(op) ?? times.set(op, []).get(op)).push(ms);
  let failed = 0;
  const failures = new Map();
  const started = process.hrtime.bigint();
  try {
    const agents = await Promise.all(Array.from({ length: CLIENTS }, () => Agent.connect(proc.url)));
    await Promise.all(
      agents.map(async (agent, c) => {
        const targets = await Promise.all((vg ? ['nfs', 'lvm'] : ['nfs']).map((b) => agent.backend(b)));
        const mine = [];
        let next = 0;
        const one = async (i) => {
          const backend = targets[Math.floor(i / 4) % targets.length];
          const t0 = process.hrtime.bigint();
          let op;
          try {
            if (i % 4 === 0) {
              op = `${backend.name} create`;
              mine.push(await backend.createVolume({ size: 1, name: `load-${c}-${i}` }));
            } else if (i % 4 === 1 && mine.some((v) => v.backend === backend)) {
              op = `${backend.name} delete`;
              const vol = mine.splice(mine.findIndex((v) => v.backend === backend), 1)[0];
              await vol.delete();
            } else if (i % 4 === 2) {
              op = 'volume.list';
              await backend.volumes();
            } else {
              op = 'backend.stats';
              await backend.stats();
            }
            note(op, Number(process.hrtime.bigint() - t0) / 1e6);
          } catch (err) {
            failed++;
            failures.set(err.code ?? err.message, (failures.get(err.code ?? err.message) ?? 0) + 1);
          }
        };
        await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
          while (next < PER_CLIENT) await one(next++);
        }));
        await agent.close();
      }),
    );
  } finally {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const peak = await stop();
    const total = [...times.values()].reduce((n, t) => n + t.length, 0);
    console.log(`  throughput ${(total / seconds).toFixed(0)} ops/s (${total} ops in ${seconds.toFixed(1)} s), failed ${failed}${failed ? ` ${JSON.stringify(Object.fromEntries(failures))}` : ''}`);
    for (const [op, t] of [...times].sort()) {
      t.sort((a, b) => a - b);
      console.log(`  ${op.padEnd(16)} p50 ${fmt(pct(t, 50)).padStart(10)}   p99 ${fmt(pct(t, 99)).padStart(10)}   (n=${t.length})`);
    }
    console.log(`  agent RSS peak ${peak.rss.toFixed(0)} MiB; commands running peak ${peak.commands}; EMFILE in log: ${/EMFILE/.test(proc.stderr())}`);
    await proc.dispose();
    await vg?.destroy();
  }
}

/** An agent whose share holds INDEXED raw sparse volume files, indexed by `kindling-agent reindex`. */
export async function index() {
  console.log(`index: one agent with ${INDEXED.toLocaleString('en')} indexed volumes`);
  const dir = await mkdtemp(join(tmpdir(), 'kindling-index-bench-'));
  const share = join(dir, 'share');
  await mkdir(share);
  const names = [];
  try {
    for (let v = 0; v < INDEXED; v++) {
      const id = randomUUID();
      if (v % 10_000 === 0) names.push(id);
      const file = await open(join(share, `volume-${id}`), 'w');
      await file.truncate(1024 ** 3);
      await file.close();
    }
    // The agent reads KINDLING_TOKEN before its config: the bench's own client token is the one.
    const token = process.env.KINDLING_TOKEN ?? 'index-bench-token-0123456789';
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      token,
      dataDir: join(dir, 'data'),
      backends: [{ name: 'nfs', driver: 'nfs', shares: [share], format: 'raw', sparse: true, maxOverSubscriptionRatio: 1e6 }],
    };
    await writeFile(join(dir, 'agent.json'), JSON.stringify(config));
    const t0 = Date.now();
    await new Promise((res) => spawn(process.execPath, [AGENT_BIN, 'reindex', '--config', join(dir, 'agent.json')], { stdio: 'ignore' }).once('exit', res));
    console.log(`  reindex of ${INDEXED.toLocaleString('en')} files ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const t1 = Date.now();
    const child = spawn(process.execPath, [AGENT_BIN, '--config', join(dir, 'agent.json')], { stdio: ['ignore', 'pipe', 'ignore'] });
    const url = await new Promise((res) =>
      createInterface({ input: child.stdout }).on('line', (line) => line.startsWith('{"event":"listening"') && res(JSON.parse(line).url)),
    );
    const ready = Date.now() - t1;
    const rss = await rssMiB(child.pid);
    const agent = await Agent.connect(url, { token });
    const nfs = await agent.backend('nfs');
    const byId = [];
    const byName = [];
    const some = (await nfs.volumesFiltered({ volumeId: names[0] }))[0];
    for (let i = 0; i < sized({ quick: 5, default: 200, full: 200 }); i++) {
      let t = process.hrtime.bigint();
      await nfs.volumesFiltered({ volumeId: some.id });
      byId.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      await nfs.volumesFiltered({ volumeName: 'no-such-name' });
      byName.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    byId.sort((a, b) => a - b);
    byName.sort((a, b) => a - b);
    console.log(`  start to ready ${(ready / 1000).toFixed(1)} s; RSS ${rss.toFixed(0)} MiB`);
    console.log(`  volumesFiltered by id   p50 ${fmt(pct(byId, 50))}   p99 ${fmt(pct(byId, 99))}`);
    console.log(`  volumesFiltered by name p50 ${fmt(pct(byName, 50))}   p99 ${fmt(pct(byName, 99))}`);
    await agent.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
