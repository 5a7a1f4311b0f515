// Many stand-in agents in this one process (real WebSocket endpoints speaking the protocol, each with
// its own port), for bench/fleet-scale.mjs: `node bench/fleet-agents.mjs COUNT VOLUMES` prints one JSON
// line with their URLs once all listen, and stops them on SIGTERM.
import { StandInAgent } from '@kindling/sdk/testing';

const [count, volumes] = process.argv.slice(2).map(Number);
const agents = [];
for (let i = 0; i < count; i += 100) {
  const batch = Array.from({ length: Math.min(100, count - i) }, (_, j) =>
    StandInAgent.start({ hostId: `bench-host-${String(i + j).padStart(4, '0')}`, backends: [{ name: 'nfs', driver: 'nfs' }], capacityGb: 10_000 }),
  );
  agents.push(...(await Promise.all(batch)));
}
for (const agent of agents) for (let v = 0; v < volumes; v++) agent.newVolume({ backend: 'nfs', size: 1, name: `bench-${v}` });
console.log(JSON.stringify({ urls: agents.map((a) => a.url) }));
process.once('SIGTERM', () => void Promise.all(agents.map((a) => a.stop())).finally(() => process.exit(0)));
