import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Fleet } from '../fleet.js';
import { StandInAgent } from '../testing/stand-in-agent.js';

// A fleet of 200 real WebSocket endpoints (stand-in agents, one process): correctness at a scale where a
// fan-out without bounds, a call that waits for every agent, or placement that asks every agent shows.
const AGENTS = 200;
const hosts: StandInAgent[] = [];

/** Ports nothing listens on: agents that are down from the start. */
async function deadUrls(count: number): Promise<string[]> {
  const servers: Server[] = await Promise.all(
    Array.from({ length: count }, () => new Promise<Server>((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => resolve(s)); })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports.map((p) => `ws://127.0.0.1:${p}`);
}

const opsSince = (host: StandInAgent, from: number, op: string) => host.requests.slice(from).filter((r) => r.op === op).length;

beforeAll(async () => {
  for (let i = 0; i < AGENTS; i += 50) {
    hosts.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, AGENTS - i) }, (_, j) =>
          StandInAgent.start({ hostId: `host-${String(i + j).padStart(3, '0')}`, backends: [{ name: 'nfs', driver: 'nfs' }], capacityGb: 1000 }),
        ),
      )),
    );
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
});

describe(`a fleet of ${AGENTS} agents`, () => {
  it('connects to every live agent, no more than connectConcurrency at once, and names those that are down without rejecting', async () => {
    let opening = 0;
    let most = 0;
    const hellos = hosts.map((host) => {
      const hello = host.handle('hello', async (args, request) => {
        opening++;
        most = Math.max(most, opening);
        await new Promise((r) => setTimeout(r, 5));
        opening--;
        return hello!(args, request);
      });
      return hello;
    });
    const dead = await deadUrls(10);
    const fleet = await Fleet.connect([...hosts.map((h) => h.url), ...dead], { connectConcurrency: 8, reconnect: { initialDelayMs: 60_000 } });
    try {
      const up = fleet.agents.filter((a) => a.state === 'up').map((a) => a.url);
      const down = fleet.agents.filter((a) => a.state === 'down');
      expect(up).toEqual(hosts.map((h) => h.url));
      expect(down.map((a) => a.url)).toEqual(dead);
      expect(down.every((a) => a.lastError?.code === 'UNAVAILABLE')).toBe(true);
      expect(most).toBeLessThanOrEqual(8);
      const { backends, failed } = await fleet.backends();
      expect(backends).toHaveLength(AGENTS);
      expect(failed.map((f) => f.url)).toEqual(dead);
    } finally {
      await fleet.close();
      hosts.forEach((host, i) => host.handle('hello', hellos[i]!));
    }
  });

  it('lists with partial results: an agent gone and one that never answers are named, the rest answer', async () => {
    const fleet = await Fleet.connect(hosts.map((h) => h.url), { readTimeoutMs: 5000, reconnect: { initialDelayMs: 60_000, waitMs: 100 } });
    const [gone, hung] = [hosts[17]!, hosts[142]!];
    const list = hung.handle('volume.list', () => new Promise(() => {}));
    try {
      for (const host of hosts) host.newVolume({ backend: 'nfs', size: 1, name: `v-${host.hostId}` });
      // Gone from the network: its links cut and every redial refused.
      gone.refuseUpgrades(503);
      gone.cut();
      const { volumes, failed } = await fleet.volumes();
      expect(volumes).toHaveLength(AGENTS - 2);
      expect(failed.map((f) => f.url).sort()).toEqual([gone.url, hung.url].sort());
      expect(failed.find((f) => f.url === hung.url)?.error.code).toBe('TIMEOUT');
      const health = await fleet.health({ timeoutMs: 500 });
      expect(health).toHaveLength(AGENTS);
      expect(health.find((h) => h.url === gone.url)?.ready).toBe(false);
    } finally {
      await fleet.close();
      gone.refuseUpgrades(null);
      if (list) hung.handle('volume.list', list);
      for (const host of hosts) host.volumes.clear();
    }
  });

  it('places creates evenly over equal agents from the capacity they pushed, asking no agent for stats per create, and one whose stats hang after a reconnect holds no create back', async () => {
    const fleet = await Fleet.connect(hosts.map((h) => h.url));
    const stuck = hosts[99]!;
    let stats: ReturnType<StandInAgent['handle']>;
    try {
      expect((await fleet.stats()).failed).toEqual([]);
      // The stuck agent's link drops; it is back at once, but its capacity fetch on rejoining never answers.
      stats = stuck.handle('backend.stats', () => new Promise(() => {}));
      const before = stuck.requests.length;
      stuck.cut();
      await vi.waitFor(() => expect(opsSince(stuck, before, 'backend.stats')).toBe(1), { timeout: 10_000 });
      const marks = hosts.map((h) => h.requests.length);
      // Two rounds in parallel batches of 50: each agent gets two (the stuck one from its last known capacity).
      const placed: string[] = [];
      for (let i = 0; i < 2 * AGENTS; i += 50) {
        const batch = await Promise.all(Array.from({ length: Math.min(50, 2 * AGENTS - i) }, () => fleet.createVolume({ size: 1 })));
        placed.push(...batch.map((v) => fleet.agentOf(v).hostId!));
      }
      const perHost = new Map<string, number>();
      for (const id of placed) perHost.set(id, (perHost.get(id) ?? 0) + 1);
      expect(perHost.size).toBe(AGENTS);
      expect(new Set([...perHost.values()])).toEqual(new Set([2]));
      expect(hosts.reduce((n, h, i) => n + opsSince(h, marks[i]!, 'backend.stats'), 0)).toBe(0);
    } finally {
      await fleet.close();
      if (stats!) stuck.handle('backend.stats', stats);
      for (const host of hosts) host.volumes.clear();
    }
  });
});
