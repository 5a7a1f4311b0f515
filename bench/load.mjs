// Load benchmark (`pnpm bench load`): figures only, never asserted. 20 clients with 100 requests in flight
// each, mixed operations on NFS (and LVM on a loop VG when root): throughput, p50/p99 by op, agent RSS
// peak, commands running peak. One agent holding many volumes is bench/scale.mjs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent } from '@kindling/sdk';
import { createLoopVg, loopVgUnavailable, startAgentProcess } from '@kindling/agent/testing';
import { fmt, pct, sized } from './stats.mjs';

const CLIENTS = sized({ quick: 2, default: 10, full: 20 });
const IN_FLIGHT = sized({ quick: 4, default: 25, full: 100 });
const PER_CLIENT = Number(process.env.LOAD_BENCH_PER_CLIENT ?? sized({ quick: 8, default: 40, full: 300 }));

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
