import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encode } from '@kindling/protocol';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

const TOKEN = 'test-token-0123456789abcdef';
let agent: AgentProcess;
let client: RawClient;
let volumeId: string;

async function snapshotOfState() {
  const reply = await client.call('volume.list', {});
  const listing = reply.ok ? reply.result : reply.error;
  const files = (await import('node:fs')).readdirSync(`${agent.dir}/share`).sort();
  return { listing, files };
}

beforeAll(async () => {
  agent = await startAgentProcess({ token: TOKEN });
  client = await RawClient.connect(agent.url, TOKEN);
  const created = await client.call('volume.create', { backend: 'nfs', size: 1, name: 'keep' });
  if (!created.ok) throw new Error(JSON.stringify(created.error));
  volumeId = (created.result as { id: string }).id;
});
afterAll(async () => {
  client?.close();
  await agent?.dispose();
});

const long = 'x'.repeat(256);
const cases: [string, string, unknown, string][] = [
  ['size 0', 'volume.create', { backend: 'nfs', size: 0 }, 'INVALID_ARGUMENT'],
  ['negative size', 'volume.create', { backend: 'nfs', size: -1 }, 'INVALID_ARGUMENT'],
  ['fractional size', 'volume.create', { backend: 'nfs', size: 1.5 }, 'INVALID_ARGUMENT'],
  ['string size', 'volume.create', { backend: 'nfs', size: '1' }, 'INVALID_ARGUMENT'],
  ['huge size', 'volume.create', { backend: 'nfs', size: 2 ** 53 }, 'INVALID_ARGUMENT'],
  ['missing size', 'volume.create', { backend: 'nfs' }, 'INVALID_ARGUMENT'],
  ['name with a control character', 'volume.create', { backend: 'nfs', size: 1, name: 'a\nb' }, 'INVALID_ARGUMENT'],
  ['name over 255 characters', 'volume.create', { backend: 'nfs', size: 1, name: long }, 'INVALID_ARGUMENT'],
  ['description over 255 characters', 'volume.create', { backend: 'nfs', size: 1, description: long }, 'INVALID_ARGUMENT'],
  ['unknown field', 'volume.create', { backend: 'nfs', size: 1, shell: '$(reboot)' }, 'INVALID_ARGUMENT'],
  ['unknown backend', 'volume.create', { backend: 'nope', size: 1 }, 'NOT_FOUND'],
  ['backend name with a path', 'volume.create', { backend: '../etc', size: 1 }, 'INVALID_ARGUMENT'],
  ['args not a map', 'volume.create', [1, 2], 'INVALID_ARGUMENT'],
  ['id not a UUID', 'volume.get', { id: '../../etc/passwd' }, 'INVALID_ARGUMENT'],
  ['unknown volume', 'volume.get', { id: '00000000-0000-4000-8000-000000000000' }, 'NOT_FOUND'],
  ['extend to a smaller size', 'volume.extend', { id: '$VOL', size: 1 }, 'INVALID_ARGUMENT'],
  ['unknown op', 'volume.explode', {}, 'PROTOCOL'],
];

describe('bad input over the wire gets its typed error and changes nothing', () => {
  it.each(cases)('%s', async (_what, op, args, code) => {
    const before = await snapshotOfState();
    const withVol = JSON.parse(JSON.stringify(args).replace('$VOL', volumeId)) as unknown;
    const reply = await client.call(op, withVol);
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.code).toBe(code);
      expect(reply.error.message.length).toBeGreaterThan(0);
    }
    expect(await snapshotOfState()).toEqual(before);
  });

  it('names each offending field in the message', async () => {
    const reply = await client.call('volume.create', { backend: 'nfs', size: 0, name: 'a\u0007' });
    expect(reply.ok).toBe(false);
    if (!reply.ok) {
      expect(reply.error.message).toMatch(/size/);
      expect(reply.error.message).toMatch(/name/);
    }
  });

  it.each([
    ["bytes that are not msgpack", Buffer.from([0x81])],
    ['a msgpack string, not a map', encode('hello')],
    ['a map without an id', encode({ op: 'volume.list', args: {} })],
    ['a text frame', 'not binary'],
  ])('garbage frame: %s gets a PROTOCOL reply and the agent stays up', async (_what, bytes) => {
    const reply = await client.sendBytes(bytes, null);
    expect(reply).toMatchObject({ id: null, ok: false, error: { code: 'PROTOCOL' } });
    const after = await client.call('volume.get', { id: volumeId });
    expect(after.ok).toBe(true);
  });

  it('a frame with extra fields is refused with its id', async () => {
    const reply = await client.sendFrame({ id: 999, op: 'volume.list', args: {}, sudo: true });
    expect(reply).toMatchObject({ id: 999, ok: false, error: { code: 'PROTOCOL' } });
  });

  it('refuses any op before hello', async () => {
    const fresh = await RawClient.connect(agent.url, TOKEN, false);
    const reply = await fresh.call('volume.list', {});
    expect(reply).toMatchObject({ ok: false, error: { code: 'PROTOCOL' } });
    fresh.close();
  });

  it('refuses an unsupported protocol version', async () => {
    const fresh = await RawClient.connect(agent.url, TOKEN, false);
    const reply = await fresh.call('hello', { protocolVersion: 999 });
    expect(reply).toMatchObject({ ok: false, error: { code: 'PROTOCOL' } });
    fresh.close();
  });
});

describe('auth on the upgrade', () => {
  const upgradeStatus = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(agent.url, { headers });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('error', reject);
    });

  it('refuses a missing or wrong token before any frame', async () => {
    expect(await upgradeStatus({})).toBe(401);
    expect(await upgradeStatus({ authorization: 'Bearer wrong' })).toBe(401);
    expect(await upgradeStatus({ authorization: `Basic ${TOKEN}` })).toBe(401);
    expect(await upgradeStatus({ authorization: `Bearer ${TOKEN}` })).toBe(101);
  });

  it('keeps health open for probes and guards metrics', async () => {
    const base = `http://127.0.0.1:${agent.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/kindling_ops_total\{op="volume.create",outcome="ok"\} 1/);
    expect(text).toMatch(/kindling_ops_total\{op="volume.create",outcome="INVALID_ARGUMENT"\} \d+/);
    expect(text).toMatch(/kindling_backend_free_bytes\{backend="nfs"\} \d+/);
  });
});
