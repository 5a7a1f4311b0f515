import { afterEach, describe, expect, it } from 'vitest';
import {
  BackendError,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  ProtocolError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
} from '@kindling/protocol';
import { Agent } from './agent.js';
import { StandInAgent } from './testing/stand-in-agent.js';
import { rpcUrl } from './options.js';

const open: { close(): Promise<void> }[] = [];
async function standIn(options?: Parameters<typeof StandInAgent.start>[0]): Promise<StandInAgent> {
  const server = await StandInAgent.start(options);
  open.push({ close: () => server.stop() });
  return server;
}
async function connect(url: string, options?: Parameters<typeof Agent.connect>[1]): Promise<Agent> {
  const agent = await Agent.connect(url, options);
  open.push(agent);
  return agent;
}
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('rpcUrl', () => {
  it('adds /rpc only when the URL has no path', () => {
    expect(rpcUrl('ws://127.0.0.1:8600')).toBe('ws://127.0.0.1:8600/rpc');
    expect(rpcUrl('wss://h:1/')).toBe('wss://h:1/rpc');
    expect(rpcUrl('ws://h:1/behind/proxy')).toBe('ws://h:1/behind/proxy');
  });
  it('refuses what is not a ws URL', () => {
    expect(() => rpcUrl('http://h:1')).toThrow(InvalidArgumentError);
    expect(() => rpcUrl('nope')).toThrow(InvalidArgumentError);
  });
});

describe('connect', () => {
  it('authenticates, says hello and exposes the agent identity', async () => {
    const server = await standIn({ token: 's3cret' });
    const agent = await connect(server.url, { token: 's3cret' });
    expect(agent.url).toBe(server.url);
    expect(agent.hostId).toBe('stand-in-host');
    expect(agent.agentVersion).toBe('0.0.0-stand-in');
    expect(agent.protocolVersion).toBe(1);
    expect(server.requests[0]).toMatchObject({ op: 'hello', args: { protocolVersion: 1 } });
  });

  it('rejects a refused token with UnauthorizedError', async () => {
    const server = await standIn({ token: 's3cret' });
    await expect(Agent.connect(server.url, { token: 'wrong' })).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(Agent.connect(server.url)).rejects.toBeInstanceOf(UnauthorizedError);
    expect(server.requests).toHaveLength(0);
  });

  it('rejects with UnavailableError when nothing listens', async () => {
    const server = await standIn();
    await server.stop();
    await expect(Agent.connect(server.url, { timeoutMs: 2000 })).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('requests', () => {
  it('matches interleaved replies, answered out of order, to their callers', async () => {
    const server = await standIn();
    const gates = new Map<string, ReturnType<typeof deferred<void>>>();
    server.handle('kv.get', async (args) => {
      const gate = deferred<void>();
      gates.set(String(args.key), gate);
      await gate.promise;
      return { value: `value of ${String(args.key)}` };
    });
    const agent = await connect(server.url);
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const calls = keys.map((key) => agent.kv.get(key));
    await expect.poll(() => gates.size).toBe(keys.length);
    for (const key of [...keys].reverse()) gates.get(key)?.resolve();
    expect(await Promise.all(calls)).toEqual(keys.map((k) => `value of ${k}`));
  });

  it('turns error replies into the typed classes, details kept', async () => {
    const server = await standIn();
    const agent = await connect(server.url);
    const failure = { command: ['lvcreate', '-L', '1g'], exitCode: 5, stderrTail: 'insufficient free space' };
    server.handle('kv.get', (args) => {
      if (args.key === 'conflict') throw new ConflictError('busy');
      if (args.key === 'backend') throw new BackendError('lvcreate failed', failure);
      throw new NotFoundError('nothing');
    });
    await expect(agent.kv.get('conflict')).rejects.toBeInstanceOf(ConflictError);
    await expect(agent.kv.get('missing')).rejects.toBeInstanceOf(NotFoundError);
    const err = await agent.kv.get('backend').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err).toMatchObject({ code: 'BACKEND_ERROR', message: 'lvcreate failed', details: failure });
    await expect(agent.backend('nope')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('makes an unknown error code a ProtocolError', async () => {
    const server = await standIn();
    const agent = await connect(server.url);
    server.handle('kv.get', () => {
      throw Object.assign(new ConflictError('x'), { code: 'SOMETHING_NEW' });
    });
    await expect(agent.kv.get('k')).rejects.toBeInstanceOf(ProtocolError);
  });

  it('rejects invalid arguments before sending anything', async () => {
    const server = await standIn();
    const agent = await connect(server.url);
    const lvm = await agent.backend('lvm');
    const sent = server.requests.length;
    const bad = [
      lvm.createVolume({ size: 0 }),
      lvm.createVolume({ size: 1.5 }),
      lvm.createVolume({ size: 'big' as unknown as number }),
      lvm.createVolume({ size: 1, name: 'tab\there' }),
      lvm.createVolume({ size: 1, name: 'x'.repeat(256) }),
      lvm.createVolume({ size: 1, colour: 'red' } as unknown as { size: number }),
      agent.kv.set('', 'v'),
    ];
    for (const call of bad) await expect(call).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(server.requests.length).toBe(sent);
  });

  it('times a request out with TimeoutError and drops the late reply', async () => {
    const server = await standIn();
    const late = deferred<void>();
    server.handle('kv.get', async () => {
      await late.promise;
      return { value: 'late' };
    });
    const agent = await connect(server.url, { timeoutMs: 100 });
    await expect(agent.kv.get('slow')).rejects.toBeInstanceOf(TimeoutError);
    late.resolve();
    server.handle('kv.get', () => ({ value: 'fresh' }));
    expect(await agent.kv.get('next')).toBe('fresh');
  });
});

describe('losing the agent', () => {
  it('rejects calls in flight with UnavailableError once the agent stays away past the wait, then reconnects in the background', async () => {
    const server = await standIn();
    server.handle('kv.get', () => new Promise(() => {})); // never answers
    const agent = await connect(server.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 50, waitMs: 300 } });
    const events: string[] = [];
    agent.on('disconnect', () => events.push('disconnect'));
    agent.on('reconnect', () => events.push('reconnect'));
    const inFlight = [agent.kv.get('a'), agent.kv.get('b')].map((call) => call.catch((e: unknown) => e));
    await expect.poll(() => server.requests.filter((r) => r.op === 'kv.get').length).toBe(2);
    await server.stop();
    for (const outcome of await Promise.all(inFlight)) expect(outcome).toBeInstanceOf(UnavailableError);
    expect(agent.connected).toBe(false);

    server.handle('kv.get', () => ({ value: 'back' }));
    await server.listen();
    // Made while still down: waits for the redial, then goes through.
    expect(await agent.kv.get('a')).toBe('back');
    expect(events).toEqual(['disconnect', 'reconnect']);
    expect(server.requests.filter((r) => r.op === 'hello')).toHaveLength(2);
  });

  it('rejects a call made while down once the brief wait is over', async () => {
    const server = await standIn();
    const agent = await connect(server.url, { reconnect: { initialDelayMs: 20, waitMs: 100 } });
    await server.stop();
    await expect.poll(() => agent.connected).toBe(false);
    await expect(agent.kv.get('a')).rejects.toBeInstanceOf(UnavailableError);
  });

  it('without reconnect, fails calls at once while down', async () => {
    const server = await standIn();
    const agent = await connect(server.url, { reconnect: false });
    await server.stop();
    await expect.poll(() => agent.connected).toBe(false);
    const started = Date.now();
    await expect(agent.kv.get('a')).rejects.toBeInstanceOf(UnavailableError);
    expect(Date.now() - started).toBeLessThan(100);
  });

  it('close() rejects what is in flight and everything after', async () => {
    const server = await standIn();
    server.handle('kv.get', () => new Promise(() => {}));
    const agent = await Agent.connect(server.url);
    const inFlight = agent.kv.get('a').catch((e: unknown) => e);
    await expect.poll(() => server.requests.length).toBe(2);
    await agent.close();
    expect(await inFlight).toBeInstanceOf(UnavailableError);
    await expect(agent.kv.get('b')).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('a fleet-style agent, held before it answers', () => {
  it('is constructed from a URL, opened later, and open() again is a no-op', async () => {
    const server = await standIn();
    const agent = new Agent(server.url);
    open.push(agent);
    expect(agent.connected).toBe(false);
    expect(() => agent.hostId).toThrow(UnavailableError);
    await expect(agent.kv.get('k')).rejects.toBeInstanceOf(UnavailableError);
    await Promise.all([agent.open(), agent.open()]);
    await agent.open();
    expect(agent.hostId).toBe('stand-in-host');
    expect(server.requests.filter((r) => r.op === 'hello')).toHaveLength(1);
  });

  it('reports a token refused on redial as UnauthorizedError', async () => {
    const first = await standIn({ token: 'old' });
    const agent = await connect(first.url, { token: 'old', reconnect: { initialDelayMs: 10, maxDelayMs: 20, waitMs: 300 } });
    await first.stop();
    await expect.poll(() => agent.connected).toBe(false);
    const rotated = await standIn({ token: 'new', port: first.port });
    await expect(agent.kv.get('k')).rejects.toBeInstanceOf(UnauthorizedError);
    expect(rotated.requests).toHaveLength(0);
  });
});
