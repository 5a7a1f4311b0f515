import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, UnauthorizedError, UnavailableError } from '@kindling/sdk';
import { requires } from '@kindling/agent/testing';
import { createNetnsHosts, launchAgent, netnsUnavailable, type LaunchedAgent, type NetnsHost } from './support/netns.js';

// Hosts with really different addresses: each agent runs in its own network namespace, listening
// on its veth address (a token is required off loopback), all on the same port number.
const maybe = requires('the fleet-over-namespaces tests (network namespaces)', netnsUnavailable(), describe, describe.skip);

const TOKEN = 'fleet-netns-test-token-0123456789';
const PORT = 8600;

maybe('fleet over agents in their own network namespaces', () => {
  let destroy: (() => Promise<void>) | undefined;
  let hosts: NetnsHost[];
  /** The agent on each host now, by host index; the late host's arrives mid-test. */
  const agents: LaunchedAgent[] = [];
  /** Every agent started, for cleanup. */
  const launched: LaunchedAgent[] = [];
  let fleet: Fleet;
  const urlOf = (host: NetnsHost): string => `ws://${host.address}:${PORT}/rpc`;
  const start = async (host: NetnsHost, index: number): Promise<LaunchedAgent> => {
    const agent = await launchAgent({ host: host.address, port: PORT, token: TOKEN, netns: host.netns });
    agents[index] = agent;
    launched.push(agent);
    return agent;
  };

  beforeAll(async () => {
    ({ hosts, destroy } = await createNetnsHosts(3));
    await Promise.all(hosts.slice(0, 2).map(start));
    fleet = await Fleet.connect(hosts.map(urlOf), { token: TOKEN, timeoutMs: 5000, reconnect: { initialDelayMs: 100, maxDelayMs: 400 } });
  });
  afterAll(async () => {
    await fleet?.close();
    await Promise.all(launched.map((a) => a.dispose()));
    await destroy?.();
  });

  it('reaches each host at its own address; the one with no agent yet is down', async () => {
    const [one, two, three] = hosts as [NetnsHost, NetnsHost, NetnsHost];
    expect(new Set(hosts.map((h) => h.address)).size).toBe(3);
    expect(fleet.agents.map((a) => [a.url, a.state])).toEqual([
      [urlOf(one), 'up'],
      [urlOf(two), 'up'],
      [urlOf(three), 'down'],
    ]);
    expect(fleet.agents.map((a) => a.hostId)).toEqual([agents[0]?.hostId, agents[1]?.hostId, null]);
    expect(fleet.agents[2]?.lastError).toBeInstanceOf(UnavailableError);

    const health = await fleet.health();
    expect(health.map((h) => [h.hostId, h.ready])).toEqual([
      [agents[0]?.hostId, true],
      [agents[1]?.hostId, true],
      [null, false],
    ]);
    expect(health[2]?.readyzError?.message).toContain(`${three.address}:${PORT}/readyz`);
  });

  it('places volumes across hosts and lists them back from each', async () => {
    const made = await Promise.all([1, 2].map((i) => fleet.createVolume({ size: 1, name: `ns-${i}` })));
    expect(new Set(made.map((v) => fleet.agentOf(v).hostId))).toEqual(new Set([agents[0]?.hostId, agents[1]?.hostId]));
    const { volumes, failed } = await fleet.volumes({ name: /^ns-/ });
    expect(volumes.sort((a, b) => (a.name ?? '').localeCompare(b.name ?? ''))).toEqual(made);
    expect(failed.map((f) => f.url)).toEqual([urlOf(hosts[2] as NetnsHost)]);
  });

  it('a host that dies is named, the others answer; a host that comes up late joins and takes the next volume', async () => {
    const [one, , three] = hosts as [NetnsHost, NetnsHost, NetnsHost];
    await agents[0]?.kill();
    const deadline = Date.now() + 10_000;
    while (fleet.agents[0]?.state !== 'down' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const { volumes, failed } = await fleet.volumes();
    expect(volumes.map((v) => fleet.agentOf(v).hostId)).toEqual([agents[1]?.hostId]);
    expect(failed.map((f) => f.url)).toEqual([urlOf(one), urlOf(three)]);
    expect((await fleet.health()).map((h) => h.ready)).toEqual([false, true, false]);

    const late = await start(three, 2);
    while (fleet.agents[2]?.state !== 'up' && Date.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(fleet.agents[2]?.hostId).toBe(late.hostId);
    const vol = await fleet.createVolume({ size: 1 });
    expect(fleet.agentOf(vol).hostId).toBe(late.hostId);
  });

  it('a host that comes back at its address rejoins through the link\'s own redial, as the agent it now is', async () => {
    const [one] = hosts as [NetnsHost];
    const before = fleet.agents[0];
    expect(before?.state).toBe('down');
    const again = await start(one, 0);
    const deadline = Date.now() + 15_000;
    while (fleet.agents[0]?.state !== 'up' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fleet.agents[0]).toBe(before);
    expect(before?.hostId).toBe(again.hostId);
    const { volumes, failed } = await fleet.volumes();
    expect(failed).toEqual([]);
    expect(new Set(volumes.map((v) => fleet.agentOf(v).hostId))).toEqual(new Set([agents[1]?.hostId, agents[2]?.hostId]));
    expect((await fleet.health()).map((h) => h.ready)).toEqual([true, true, true]);
  });

  it('a wrong token leaves every agent down with UnauthorizedError, and the fleet still answers', async () => {
    const wrong = await Fleet.connect(hosts.slice(1).map(urlOf), { token: 'not-the-token-0123456789' });
    try {
      expect(wrong.agents.map((a) => a.state)).toEqual(['down', 'down']);
      expect(wrong.agents.map((a) => a.lastError)).toEqual([expect.any(UnauthorizedError), expect.any(UnauthorizedError)]);
      const { volumes, failed } = await wrong.volumes();
      expect(volumes).toEqual([]);
      expect(failed.map((f) => f.error.code)).toEqual(['UNAUTHORIZED', 'UNAUTHORIZED']);
    } finally {
      await wrong.close();
    }
  });
});
