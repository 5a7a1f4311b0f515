import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The agent's edge, as a browser page or a DNS-rebinding attacker would meet it.
let proc: AgentProcess;
const token = 'edge-test-token-0123456789';

beforeAll(async () => {
  proc = await startAgentProcess({ token });
});
afterAll(async () => {
  await proc?.dispose();
});

/** Opens /rpc with the given headers; resolves with the HTTP status of a refusal, or 101 when it opened. */
function upgrade(headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(proc.url, { headers });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

/** A GET with a Host header of our choosing (fetch will not send one). */
function get(path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proc.port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

describe('the agent edge', () => {
  it('refuses a WebSocket upgrade from a web page of another origin, even with the token', async () => {
    expect(await upgrade({ authorization: `Bearer ${token}`, origin: 'https://evil.example' })).toBe(403);
    expect(await upgrade({ authorization: `Bearer ${token}` })).toBe(101);
  });

  it('takes the bearer scheme in any case; a 401 names the scheme', async () => {
    expect(await upgrade({ authorization: `bearer ${token}` })).toBe(101);
    const res = await fetch(`http://127.0.0.1:${proc.port}/v1/backends`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('refuses a foreign Host name (DNS rebinding), on /v1 and /rpc alike', async () => {
    const auth = { authorization: `Bearer ${token}` };
    expect(await get('/v1/backends', { ...auth, host: `rebind.attacker.test:${proc.port}` })).toBe(421);
    expect(await get('/healthz', { host: 'rebind.attacker.test' })).toBe(421);
    expect(await upgrade({ ...auth, host: `rebind.attacker.test:${proc.port}` })).toBe(421);
    expect(await get('/v1/backends', { ...auth, host: `localhost:${proc.port}` })).toBe(200);
  });

  it('takes loopback names strictly: a name that only starts like 127. is a foreign name', async () => {
    const auth = { authorization: `Bearer ${token}` };
    for (const host of [`127.attacker.test:${proc.port}`, '127.0.0.1.attacker.test', `localhost.attacker.test:${proc.port}`]) {
      expect(await get('/v1/backends', { ...auth, host }), host).toBe(421);
      expect(await upgrade({ ...auth, host }), host).toBe(421);
    }
    for (const host of [`127.0.0.1:${proc.port}`, `[::1]:${proc.port}`, 'localhost']) expect(await get('/v1/backends', { ...auth, host }), host).toBe(200);
  });
});
