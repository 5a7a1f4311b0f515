// The fleet at 1,000 agents (issue 19 item 5): stand-in agents in a child process (so this process holds
// only the SDK), each a real WebSocket endpoint. Prints connect time, the SDK's heap and RSS per
// connected idle agent, the fan-out list time, and how evenly placement spreads creates.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Fleet } from '@kindling/sdk';
import { fmt, pct, sample, sized } from './stats.mjs';

const AGENTS = Number(process.env.FLEET_SCALE_AGENTS ?? sized({ quick: 50, default: 1000, full: 1000 }));
const VOLUMES = 2;
const DOWN = Math.max(1, Math.round(AGENTS / 100));
const RUNS = sized({ quick: 3, default: 10, full: 20 });

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const settled = () => {
  gc();
  gc();
  const { heapUsed, rss } = process.memoryUsage();
  return { heapUsed, rss };
};

/** Ports nothing listens on: agents down from the start. */
async function deadUrls(n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => res(s)); })));
  const urls = servers.map((s) => `ws://127.0.0.1:${s.address().port}`);
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return urls;
}

export async function fleetAtScale(say) {
  const host = spawn(process.execPath, ['--max-old-space-size=4096', new URL('fleet-agents.mjs', import.meta.url).pathname, String(AGENTS), String(VOLUMES)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = await once(createInterface({ input: host.stdout }), 'line');
    const { urls } = JSON.parse(line);
    const dead = await deadUrls(DOWN);
    say(`  at scale: ${AGENTS} stand-in agents (one process, real WebSocket endpoints) + ${DOWN} down, ${VOLUMES} volumes each`);
    const before = settled();
    const t0 = performance.now();
    const fleet = await Fleet.connect([...urls, ...dead], { connectTimeoutMs: 10_000, reconnect: { initialDelayMs: 600_000 } });
    const connectMs = performance.now() - t0;
    try {
      const up = fleet.agents.filter((a) => a.state === 'up').length;
      const down = fleet.agents.filter((a) => a.state === 'down').length;
      if (up !== AGENTS || down !== DOWN) throw new Error(`connect: ${up} up and ${down} down, expected ${AGENTS} and ${DOWN}`);
      // Settle the capacity fetch each agent gets on joining before weighing the idle fleet.
      await fleet.place({ size: 1 });
      await new Promise((r) => setTimeout(r, 500));
      const idle = settled();
      say(`  Fleet.connect (${AGENTS} up, ${DOWN} down named)  ${fmt(connectMs).padStart(12)}`);
      say(`  SDK heap per idle agent                 ${((idle.heapUsed - before.heapUsed) / AGENTS / 1024).toFixed(1).padStart(9)} KiB   RSS ${((idle.rss - before.rss) / AGENTS / 1024).toFixed(1)} KiB`);

      const listed = await fleet.volumes();
      if (listed.volumes.length !== AGENTS * VOLUMES || listed.failed.length !== DOWN) {
        throw new Error(`volumes(): ${listed.volumes.length} volumes and ${listed.failed.length} failed, expected ${AGENTS * VOLUMES} and ${DOWN}`);
      }
      const times = await sample(RUNS, () => fleet.volumes(), 1);
      say(`  fan-out volumes() (${AGENTS * VOLUMES} volumes, ${DOWN} down)  p50 ${fmt(pct(times, 50))}   p95 ${fmt(pct(times, 95))}`);
      const stats = await sample(RUNS, () => fleet.stats(), 1);
      say(`  fan-out stats()                         p50 ${fmt(pct(stats, 50))}   p95 ${fmt(pct(stats, 95))}`);

      // Two creates per agent, 64 at a time: an even spread gives every agent exactly two.
      const perHost = new Map(fleet.agents.filter((a) => a.state === 'up').map((a) => [a.hostId, 0]));
      const total = 2 * AGENTS;
      const c0 = performance.now();
      for (let i = 0; i < total; i += 64) {
        const made = await Promise.all(Array.from({ length: Math.min(64, total - i) }, () => fleet.createVolume({ size: 1 })));
        for (const v of made) perHost.set(fleet.agentOf(v).hostId, perHost.get(v.backend.agent.hostId) + 1);
      }
      const createMs = (performance.now() - c0) / total;
      const counts = [...perHost.values()];
      say(`  placement spread (${total} creates)      min ${Math.min(...counts)} / max ${Math.max(...counts)} per agent, ${fmt(createMs)} per create`);
    } finally {
      await fleet.close();
    }
  } finally {
    host.kill('SIGTERM');
    await once(host, 'exit');
  }
}
