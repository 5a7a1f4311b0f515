import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, Fleet, UnavailableError, type FleetAgent, type Volume } from '@kindling/sdk';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { freePort, launchAgent, type LaunchedAgent } from './support/netns.js';

// Several hosts as separate agent processes on loopback, each with its own data dir and share:
// `full` keeps 99.9 % of its share in reserve, so placement must never pick it; `b` and `c` have room;
// `late` is in the fleet from the start but only starts mid-test; `c` is killed mid-test.
const nfsWith = (extra: Record<string, unknown>) => (dir: string) => [
  { name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], ...extra },
];

let full: AgentProcess;
let b: AgentProcess;
let c: AgentProcess;
let late: LaunchedAgent | undefined;
let latePort: number;
let lateUrl: string;
let fleet: Fleet;

const member = (url: string): FleetAgent => {
  const found = fleet.agents.find((a) => a.url === url);
  if (!found) throw new Error(`no fleet agent ${url}`);
  return found;
};

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  [full, b, c] = await Promise.all([
    startAgentProcess({ backends: nfsWith({ reservedPercentage: 99.9 }) }),
    startAgentProcess(),
    startAgentProcess(),
  ]);
  latePort = await freePort();
  lateUrl = `ws://127.0.0.1:${latePort}/rpc`;
  fleet = await Fleet.connect([full.url, b.url, c.url, lateUrl], {
    concurrency: 2,
    timeoutMs: 10_000,
    reconnect: { initialDelayMs: 100, maxDelayMs: 400 },
  });
});

afterAll(async () => {
  await fleet?.close();
  await Promise.all([full?.dispose(), b?.dispose(), c?.dispose(), late?.dispose()]);
});

describe('fleet over several agent processes', () => {
  it('connects to the agents that answer and keeps the missing one as down, with its error', () => {
    expect(fleet.agents.map((a) => [a.url, a.state])).toEqual([
      [full.url, 'up'],
      [b.url, 'up'],
      [c.url, 'up'],
      [lateUrl, 'down'],
    ]);
    expect(fleet.agents.map((a) => a.hostId)).toEqual([full.hostId, b.hostId, c.hostId, null]);
    expect(member(lateUrl).lastError).toBeInstanceOf(UnavailableError);
    expect(member(b.url).agent.hostId).toBe(b.hostId);
  });

  it('backends(), volumes(), stats() answer with the agents that are up and name the one that is not', async () => {
    const { backends, failed } = await fleet.backends();
    expect(backends.map((x) => fleet.agentOf(x).hostId)).toEqual([full.hostId, b.hostId, c.hostId]);
    expect(failed.map((f) => [f.url, f.error.code])).toEqual([[lateUrl, 'UNAVAILABLE']]);
    expect((await fleet.backends({ driver: 'lvm' })).backends).toEqual([]);

    const listed = await fleet.volumes();
    expect(listed.volumes).toEqual([]);
    expect(listed.failed.map((f) => f.url)).toEqual([lateUrl]);

    const { stats, failed: statsFailed } = await fleet.stats();
    expect(stats.map((s) => [s.agent.hostId, s.backend.name, s.stats.reservedPercentage])).toEqual([
      [full.hostId, 'nfs', 99.9],
      [b.hostId, 'nfs', 0],
      [c.hostId, 'nfs', 0],
    ]);
    expect(statsFailed.map((f) => f.url)).toEqual([lateUrl]);
  });

  it('places on the hosts with room, spreading by volume count, never on the full one', async () => {
    const dry = await fleet.place({ size: 1 });
    expect([b.hostId, c.hostId]).toContain(dry.agent.hostId);
    expect(dry.roomGb).toBeGreaterThan(1);

    // Parallel creates spread out: each counts against its backend until answered.
    const made = await Promise.all([1, 2, 3, 4].map((i) => fleet.createVolume({ size: 1, name: `db-${i}` })));
    const hosts = made.map((v) => fleet.agentOf(v).hostId);
    // Each object knows its host itself, too.
    expect(made.map((v) => v.backend.agent.hostId)).toEqual(hosts);
    expect(hosts.filter((h) => h === b.hostId)).toHaveLength(2);
    expect(hosts.filter((h) => h === c.hostId)).toHaveLength(2);
    const web = await fleet.createVolume({ size: 1, name: 'web-1', metadata: { tier: 'web' } });
    expect([b.hostId, c.hostId]).toContain(fleet.agentOf(web).hostId);

    // The full host's own agent agrees: it refuses for space, before anything is made, so the
    // refusal leaves no record behind (a fleet's fallback leaves no orphans).
    const fullNfs = await member(full.url).agent.backend('nfs');
    await expect(fullNfs.createVolume({ size: 1 })).rejects.toBeInstanceOf(ConflictError);
    expect(await fullNfs.volumes()).toEqual([]);
  });

  it('hands out the very objects of each Agent, and filters by name', async () => {
    const { volumes, failed } = await fleet.volumes({ name: /^db-/ });
    expect(failed.map((f) => f.url)).toEqual([lateUrl]);
    expect(volumes.map((v) => v.name).sort()).toEqual(['db-1', 'db-2', 'db-3', 'db-4']);
    const exact = await fleet.volumes({ name: 'db-3' });
    expect(exact.volumes).toHaveLength(1);
    const vol = exact.volumes[0] as Volume;
    expect(volumes).toContain(vol);

    const owner = fleet.agentOf(vol);
    expect(vol.backend).toBe(await owner.agent.backend('nfs'));
    const snap = await vol.createSnapshot({ name: 'before' });
    expect(fleet.agentOf(snap)).toBe(owner);
    const again = await fleet.volumes({ name: 'db-3' });
    expect(again.volumes[0]).toBe(vol);
    expect([...vol.snapshots]).toEqual([snap]);
  });

  it('health(): every agent, the dead one included, without throwing', async () => {
    const health = await fleet.health();
    expect(health.map((h) => [h.url, h.state, h.ready])).toEqual([
      [full.url, 'up', true],
      [b.url, 'up', true],
      [c.url, 'up', true],
      [lateUrl, 'down', false],
    ]);
    expect(health[1]?.readyz?.backends).toEqual([expect.objectContaining({ name: 'nfs', driver: 'nfs', ready: true })]);
    expect(health[3]?.readyz).toBeNull();
    expect(health[3]?.readyzError?.message).toContain(`127.0.0.1:${latePort}/readyz`);
  });

  it('a host killed mid-test: calls return the others and name it; placement moves to the host left with room', async () => {
    const onC = (await fleet.volumes()).volumes.filter((v) => fleet.agentOf(v).hostId === c.hostId).length;
    expect(onC).toBeGreaterThan(0);
    await c.kill();
    await until('c to be seen down', () => member(c.url).state === 'down');

    const { volumes, failed } = await fleet.volumes();
    expect(volumes.some((v) => fleet.agentOf(v).hostId === c.hostId)).toBe(false);
    expect(volumes.filter((v) => fleet.agentOf(v).hostId === b.hostId)).toHaveLength(5 - onC);
    expect(failed.map((f) => f.url).sort()).toEqual([c.url, lateUrl].sort());
    expect(member(c.url).lastError).toBeInstanceOf(UnavailableError);

    const health = await fleet.health();
    expect(health.map((h) => h.ready)).toEqual([true, true, false, false]);

    expect((await fleet.place({ size: 1 })).agent.hostId).toBe(b.hostId);
    const vol = await fleet.createVolume({ size: 1 });
    expect(fleet.agentOf(vol).hostId).toBe(b.hostId);
  });

  it('a host started late joins in the background, and placement moves to it (most room, fewest volumes)', async () => {
    late = await launchAgent({ host: '127.0.0.1', port: latePort });
    await until('the late host to join', () => member(lateUrl).state === 'up');
    expect(member(lateUrl).hostId).toBe(late.hostId);
    expect(member(lateUrl).lastError).toBeNull();

    const placed = await fleet.place({ size: 2 });
    expect(placed.agent.url).toBe(lateUrl);
    const vol = await fleet.createVolume({ size: 2, name: 'late-1' });
    expect(fleet.agentOf(vol).url).toBe(lateUrl);
    const { volumes, failed } = await fleet.volumes({ name: 'late-1' });
    expect(volumes).toEqual([vol]);
    expect(failed.map((f) => f.url)).toEqual([c.url]);
  });

  it('refuses with ConflictError, naming the down hosts, when nothing fits', async () => {
    const err = await fleet.place({ size: 1024 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).details).toMatchObject({ requestedGb: 1024 * 1024, down: [c.url] });
    await expect(fleet.createVolume({ size: 1, driver: 'lvm' })).rejects.toBeInstanceOf(ConflictError);
    await expect(fleet.createVolume({ size: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('fleet placement counts the room of one share, where a volume must fit', () => {
  // `split` has two shares (room for 3 T summed, at ratio 1.5) but each alone holds only 1.5 T: its
  // agent reports that as maxVolumeSizeGb, so a 1.8 T volume goes to `roomy` (one share at ratio 2).
  let split: AgentProcess;
  let roomy: AgentProcess;
  let pair: Fleet;

  beforeAll(async () => {
    [split, roomy] = await Promise.all([
      startAgentProcess({
        backends: (dir) => [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 's1'), join(dir, 's2')], maxOverSubscriptionRatio: 1.5 }],
      }),
      startAgentProcess({ backends: nfsWith({ maxOverSubscriptionRatio: 2 }) }),
    ]);
    pair = await Fleet.connect([split.url, roomy.url]);
  });
  afterAll(async () => {
    await pair?.close();
    await Promise.all([split?.dispose(), roomy?.dispose()]);
  });

  it('places a volume that no single share of a backend holds where one share does', async () => {
    const { stats } = await pair.stats();
    const shareGb = stats.find((s) => s.agent.url === roomy.url)?.stats.totalCapacityGb ?? 0;
    const size = Math.ceil(1.8 * shareGb);
    expect((await pair.place({ size })).agent.url).toBe(roomy.url);
    const vol = await pair.createVolume({ size, name: 'big' });
    expect(pair.agentOf(vol).url).toBe(roomy.url);
    expect(vol.size).toBe(size);
    await vol.delete();
  });
});
