import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, decode, encode, type ReplyFrame } from '@kindling/protocol';
import { Drain } from './drain.js';
import type { Handlers } from './dispatch.js';
import { Metrics } from './metrics.js';
import type { Role } from './auth.js';
import type { RequestLedger } from './requests.js';
import { Session, type FrameSink } from './session.js';

/** A session over an in-memory socket whose unread bytes the test sets. */
function harness(limits = { requestsInFlight: 2, unsentBytes: 1024 }, role: Role = 'admin') {
  const sent: ReplyFrame[] = [];
  const state = { unsent: 0, terminated: '' };
  const sink: FrameSink = {
    send: (bytes) => sent.push(decode(bytes) as ReplyFrame),
    unsentBytes: () => state.unsent,
    terminate: (reason) => (state.terminated = reason),
  };
  const gates: (() => void)[] = [];
  const handlers = {
    hello: () => ({ protocolVersion: PROTOCOL_VERSION }),
    'volume.get': () => new Promise((resolve) => gates.push(() => resolve({ id: 'x' }))),
    'volume.delete': () => ({ id: 'x', status: 'deleted' }),
  } as unknown as Handlers;
  const ledger = { run: () => Promise.reject(new Error('no request ids here')) } as unknown as RequestLedger;
  const session = new Session(sink, { handlers, metrics: new Metrics(), drain: new Drain(), limits, ledger }, role);
  const frame = (id: number, op: string, args: unknown = {}) => encode({ id, op, args });
  return { session, sent, state, gates, frame };
}

const anId = '6f1c1f8e-2c1e-4a53-9d47-0a3f3d1b2c4d';

describe('session', () => {
  it('accepts a request pipelined right behind hello', async () => {
    const { session, sent, frame, gates } = harness();
    const hello = session.receive(frame(1, 'hello', { protocolVersion: PROTOCOL_VERSION }));
    const next = session.receive(frame(2, 'volume.get', { id: anId }));
    await hello;
    gates.forEach((open) => open());
    await next;
    expect(sent.map((r) => [r.id, r.ok])).toEqual([
      [1, true],
      [2, true],
    ]);
  });

  it('answers BUSY with a retry hint beyond its requests in flight, and takes more once they finish', async () => {
    const { session, sent, frame, gates } = harness();
    await session.receive(frame(1, 'hello', { protocolVersion: PROTOCOL_VERSION }));
    const running = [2, 3].map((id) => session.receive(frame(id, 'volume.get', { id: anId })));
    await session.receive(frame(4, 'volume.get', { id: anId }));
    expect(sent.at(-1)).toMatchObject({ id: 4, ok: false, error: { code: 'BUSY', details: { retryAfterMs: 100 } } });
    gates.forEach((open) => open());
    await Promise.all(running);
    const again = session.receive(frame(5, 'volume.get', { id: anId }));
    gates.at(-1)?.();
    await again;
    expect(sent.at(-1)).toMatchObject({ id: 5, ok: true });
  });

  it('cuts off a client that stops reading once its unread bytes pass the limit', async () => {
    const { session, sent, state, frame } = harness();
    await session.receive(frame(1, 'hello', { protocolVersion: PROTOCOL_VERSION }));
    state.unsent = 4096;
    session.push({ event: 'capacity', resource: {} as never });
    expect(state.terminated).toMatch(/1024 bytes unread/);
    const before = sent.length;
    session.push({ event: 'capacity', resource: {} as never });
    expect(sent.length).toBe(before);
  });

  it('lets a read-only credential look but not change anything', async () => {
    const { session, sent, frame, gates } = harness(undefined, 'read');
    await session.receive(frame(1, 'hello', { protocolVersion: PROTOCOL_VERSION }));
    await session.receive(frame(2, 'volume.delete', { id: anId }));
    expect(sent.at(-1)).toMatchObject({ id: 2, ok: false, error: { code: 'UNAUTHORIZED' } });
    const read = session.receive(frame(3, 'volume.get', { id: anId }));
    gates.forEach((open) => open());
    await read;
    expect(sent.at(-1)).toMatchObject({ id: 3, ok: true });
  });
});
