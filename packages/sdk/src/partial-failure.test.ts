import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, ProtocolError, TimeoutError, UnauthorizedError, UnavailableError } from '@kindling/protocol';
import { Agent } from './agent.js';
import { Fleet } from './fleet.js';
import { Relay } from './testing/relay.js';
import { StandInAgent, type StandInOptions } from './testing/stand-in-agent.js';
import type { ConnectOptions } from './options.js';

// Issue 23: the SDK when an agent, a link or a share is down.
const open: { close(): Promise<void> }[] = [];
async function standIn(options?: StandInOptions): Promise<StandInAgent> {
  const server = await StandInAgent.start(options);
  open.push({ close: () => server.stop() });
  return server;
}
async function connect(url: string, options?: ConnectOptions): Promise<Agent> {
  const agent = await Agent.connect(url, options);
  open.push(agent);
  return agent;
}
async function fleetOf(...args: Parameters<typeof Fleet.connect>): Promise<Fleet> {
  const fleet = await Fleet.connect(...args);
  open.push(fleet);
  return fleet;
}
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

const never = (): Promise<never> => new Promise(() => undefined);

describe('timeouts by kind', () => {
  it('a hung backend.stats (one hung share) holds up neither Agent.connect nor Fleet.connect nor a listing', async () => {
    const server = await standIn();
    server.handle('backend.stats', never);
    const agent = await connect(server.url);
    expect((await agent.backends()).map((b) => b.name)).toEqual(['lvm']);
    const fleet = await fleetOf([server.url]);
    expect(fleet.agents[0]?.state).toBe('up');
    expect((await fleet.volumes()).failed).toEqual([]);
  });

  it('reads get the short read deadline, changes the longer one; the hello the connect deadline', async () => {
    const server = await standIn();
    server.handle('volume.get', never);
    const agent = await connect(server.url, { readTimeoutMs: 50 });
    const vol = await (await agent.backend('lvm')).createVolume({ size: 1 });
    const err = await vol.refresh().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).details).toMatchObject({ op: 'volume.get', timeoutMs: 50 });

    server.handle('hello', never);
    const hung = await Agent.connect(server.url, { connectTimeoutMs: 50 }).catch((e: unknown) => e);
    expect(hung).toBeInstanceOf(TimeoutError);
    expect((hung as TimeoutError).details).toMatchObject({ op: 'hello', timeoutMs: 50 });
  });
});

describe('clear refusals', () => {
  it('no token at all says that no token was given, not that it was refused', async () => {
    const server = await standIn({ token: 'the-token-0123456789' });
    const saved = { token: process.env.KINDLING_TOKEN, file: process.env.KINDLING_TOKEN_FILE };
    delete process.env.KINDLING_TOKEN;
    delete process.env.KINDLING_TOKEN_FILE;
    try {
      const err = await Agent.connect(server.url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnauthorizedError);
      expect((err as Error).message).toMatch(/no token was given/);
      expect((err as Error).message).toMatch(/KINDLING_TOKEN/);
      const wrong = await Agent.connect(server.url, { token: 'wrong-token-0123456789' }).catch((e: unknown) => e);
      expect((wrong as Error).message).toMatch(/refused the token/);
    } finally {
      if (saved.token !== undefined) process.env.KINDLING_TOKEN = saved.token;
      if (saved.file !== undefined) process.env.KINDLING_TOKEN_FILE = saved.file;
    }
  });

  it('wss:// to an agent that does not speak TLS says so', async () => {
    const server = await standIn();
    const err = await Agent.connect(server.url.replace(/^ws:/, 'wss:'), { reconnect: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/does not speak TLS: connect with ws:\/\//);
  });

  it('HTTP 421 (a Host the agent does not answer to) is a final UNAUTHORIZED, at connect and for a call waiting on a redial', async () => {
    const server = await standIn();
    server.refuseUpgrades(421);
    const err = await Agent.connect(server.url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect((err as Error).message).toMatch(/host name/);

    server.refuseUpgrades(null);
    const agent = await connect(server.url, { reconnect: { initialDelayMs: 10, maxDelayMs: 20, waitMs: 60_000 } });
    server.refuseUpgrades(421);
    server.cut();
    const waiting = await agent.backend('lvm').then((lvm) => lvm.volumes()).catch((e: unknown) => e);
    expect(waiting).toBeInstanceOf(UnauthorizedError);
  });

  it('twelve calls waiting for one redial print no MaxListeners warning', async () => {
    const server = await standIn();
    const agent = await connect(server.url, { reconnect: { initialDelayMs: 10, maxDelayMs: 20, waitMs: 60_000 } });
    const lvm = await agent.backend('lvm');
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      await server.stop();
      await expect.poll(() => agent.connected).toBe(false);
      const calls = Array.from({ length: 12 }, () => lvm.volumes());
      // Let every call register its wait before the agent returns.
      await new Promise((r) => setTimeout(r, 50));
      await server.listen();
      expect((await Promise.all(calls)).length).toBe(12);
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('a fleet with an agent down', () => {
  it('takes a token per agent', async () => {
    const a = await standIn({ token: 'token-of-a-0123456789', hostId: 'a' });
    const b = await standIn({ token: 'token-of-b-0123456789', hostId: 'b' });
    const fleet = await fleetOf([
      { url: a.url, token: 'token-of-a-0123456789' },
      { url: b.url, token: 'token-of-b-0123456789' },
    ]);
    expect(fleet.agents.map((m) => [m.hostId, m.state, m.lastError])).toEqual([
      ['a', 'up', null],
      ['b', 'up', null],
    ]);
  });

  it('a volume on a down agent is UNAVAILABLE, never NOT_FOUND; NOT_FOUND only when every agent answered', async () => {
    const a = await standIn({ hostId: 'a' });
    const b = await standIn({ hostId: 'b' });
    const onB = b.newVolume({ backend: 'lvm', size: 1 });
    const fleet = await fleetOf([a.url, b.url], { reconnect: { initialDelayMs: 10, maxDelayMs: 20, waitMs: 100 } });
    expect((await fleet.volume(onB.id)).id).toBe(onB.id);
    await b.stop();
    await expect.poll(() => fleet.agents[1]?.state).toBe('down');
    const listed = await fleet.volumes();
    expect(listed.volumes).toEqual([]);
    expect(listed.failed.map((f) => f.url)).toEqual([b.url]);
    const err = await fleet.volume(onB.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as UnavailableError).details).toMatchObject({ id: onB.id, failed: [{ url: b.url }] });
    await b.listen();
    await expect.poll(() => fleet.agents[1]?.state).toBe('up');
    expect(await fleet.volume('0b8f9a3e-5b4c-4d2e-9f1a-2c3d4e5f6a7b').catch((e: unknown) => e)).toBeInstanceOf(NotFoundError);
  });
});

describe('health', () => {
  it('says why an agent is not ready even when its RPC link is up (reason), so a loop printing it never prints null', async () => {
    const server = await standIn();
    const fleet = await fleetOf([server.url]);
    const [health] = await fleet.health();
    expect(health).toMatchObject({ state: 'up', lastError: null, ready: false });
    expect(health?.reason).toMatch(/readyz.*without a readiness report/);
  });
});

describe('a 100 ms link drop during a clone, with the SDK defaults', () => {
  it('resends with the same request id and returns the one volume', async () => {
    const server = await standIn();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    server.handle('volume.clone', async (a) => {
      await held;
      const source = server.volumes.get(String(a.id))!;
      return server.newVolume({ backend: source.backend, size: source.size, sourceVolId: source.id });
    });
    const relay = await Relay.start(server.port);
    open.push(relay);
    const agent = await connect(relay.url);
    const vol = await (await agent.backend('lvm')).createVolume({ size: 1 });
    const cloning = vol.clone();
    await expect.poll(() => server.requests.filter((r) => r.op === 'volume.clone').length).toBe(1);
    relay.cut();
    await new Promise((r) => setTimeout(r, 100));
    relay.heal();
    await expect.poll(() => server.requests.filter((r) => r.op === 'volume.clone').length).toBe(2);
    release();
    const clone = await cloning;
    const sends = server.requests.filter((r) => r.op === 'volume.clone');
    expect(new Set(sends.map((r) => r.requestId)).size).toBe(1);
    expect(server.executions(sends[0]!.requestId!)).toBe(1);
    expect([...server.volumes.keys()].sort()).toEqual([vol.id, clone.id].sort());
    expect(clone.sourceVolId).toBe(vol.id);
  });
});
