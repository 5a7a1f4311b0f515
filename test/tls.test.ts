import { execFile } from 'node:child_process';
import { get } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, decode, encode, type ReplyFrame } from '@kindling/protocol';
import { Agent, Fleet, ProtocolError } from '@kindling/sdk';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// TLS with client certificates, made here with a CA of the test's own; and read-only credentials.
const sh = promisify(execFile);
const TOKEN = 'tls-admin-token-0123456789';
const READ_TOKEN = 'tls-read-only-token-0123456789';
let dir: string;
let proc: AgentProcess;
let pem: Record<'ca' | 'cert' | 'key' | 'clientCert' | 'clientKey' | 'otherCert' | 'otherKey', Buffer>;

/** A key and a certificate signed by the test CA (or self-signed, for a stranger). */
async function issue(name: string, cn: string, signer: 'ca' | 'self', san?: string): Promise<void> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  if (signer === 'self') {
    await sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`]);
    return;
  }
  const csr = join(dir, `${name}.csr`);
  await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
  const ext = join(dir, `${name}.ext`);
  await sh('sh', ['-c', 'printf "%s\\n" "$1" > "$2"', 'sh', san ? `subjectAltName=${san}` : 'basicConstraints=CA:FALSE', ext]);
  await sh('openssl', ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', cert, '-days', '1', '-extfile', ext]);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-tls-'));
  await issue('ca', 'kindling test CA', 'self');
  await issue('server', 'localhost', 'ca', 'IP:127.0.0.1,DNS:localhost');
  await issue('client', 'controller', 'ca');
  await issue('other', 'stranger', 'self');
  const read = (f: string) => readFile(join(dir, f));
  pem = {
    ca: await read('ca.pem'),
    cert: await read('server.pem'),
    key: await read('server.key'),
    clientCert: await read('client.pem'),
    clientKey: await read('client.key'),
    otherCert: await read('other.pem'),
    otherKey: await read('other.key'),
  };
  proc = await startAgentProcess({
    token: TOKEN,
    config: {
      readTokens: [READ_TOKEN],
      tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), clientCa: join(dir, 'ca.pem') },
    },
  });
});
afterAll(async () => {
  await proc?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** Opens wss, says hello, sends one request; the reply, or the error that stopped the connection. */
async function once(opts: { token: string; cert?: Buffer; key?: Buffer }, op: string, args: unknown): Promise<ReplyFrame | Error> {
  const ws = new WebSocket(proc.url, {
    ca: pem.ca,
    ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
    headers: { authorization: `Bearer ${opts.token}` },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  } catch (err) {
    return err as Error;
  }
  const replies: ReplyFrame[] = [];
  const two = new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer) => {
      const frame = decode(data) as ReplyFrame | { event: string };
      if ('event' in frame) return;
      replies.push(frame);
      if (replies.length === 2) resolve();
    }),
  );
  ws.send(encode({ id: 1, op: 'hello', args: { protocolVersion: PROTOCOL_VERSION } }));
  ws.send(encode({ id: 2, op, args }));
  await two;
  ws.close();
  return replies[1] as ReplyFrame;
}

describe('TLS and credentials', () => {
  it('serves wss to a client whose certificate chains to the configured CA', async () => {
    expect(proc.url).toMatch(/^wss:\/\//);
    const reply = await once({ token: TOKEN, cert: pem.clientCert, key: pem.clientKey }, 'volume.create', { backend: 'nfs', size: 1 });
    expect(reply).toMatchObject({ ok: true, result: { status: 'available' } });
  });

  it('refuses a client with no certificate or one from another CA in the handshake', async () => {
    expect(await once({ token: TOKEN }, 'backend.list', {})).toBeInstanceOf(Error);
    expect(await once({ token: TOKEN, cert: pem.otherCert, key: pem.otherKey }, 'backend.list', {})).toBeInstanceOf(Error);
  });

  it('a read-only token lists and scrapes but cannot change anything', async () => {
    const client = { token: READ_TOKEN, cert: pem.clientCert, key: pem.clientKey };
    expect(await once(client, 'volume.list', {})).toMatchObject({ ok: true });
    expect(await once(client, 'volume.create', { backend: 'nfs', size: 1 })).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    const scrape = (token: string) =>
      new Promise<number>((resolve, reject) => {
        const headers = { authorization: `Bearer ${token}` };
        get(`https://127.0.0.1:${proc.port}/metrics`, { ca: pem.ca, cert: pem.clientCert, key: pem.clientKey, headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).once('error', reject);
      });
    expect(await scrape(READ_TOKEN)).toBe(200);
    expect(await scrape('not-a-token-at-all-0123')).toBe(401);
  });

  it('the SDK connects with its CA and client certificate, the token read from KINDLING_TOKEN_FILE', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    process.env.KINDLING_TOKEN_FILE = tokenFile;
    const envToken = process.env.KINDLING_TOKEN;
    delete process.env.KINDLING_TOKEN;
    try {
      const agent = await Agent.connect(proc.url, { tls: { ca: pem.ca, cert: pem.clientCert, key: pem.clientKey } });
      const vol = await (await agent.backend('nfs')).createVolume({ size: 1 });
      expect(vol.status).toBe('available');
      await vol.delete();
      await agent.close();
    } finally {
      delete process.env.KINDLING_TOKEN_FILE;
      if (envToken !== undefined) process.env.KINDLING_TOKEN = envToken;
    }
  });

  it('Fleet.health() probes /readyz with the same TLS options as the RPC link: a mutual-TLS agent reads ready', async () => {
    const fleet = await Fleet.connect([{ url: proc.url, token: TOKEN, tls: { ca: pem.ca, cert: pem.clientCert, key: pem.clientKey } }]);
    try {
      const [health] = await fleet.health();
      expect(health).toMatchObject({ state: 'up', ready: true, readyzError: null });
      expect(health?.readyz?.backends.map((b) => b.ready)).toEqual([true]);
    } finally {
      await fleet.close();
    }
  });

  it('ws:// to an agent that speaks TLS says so, not "socket hang up"', async () => {
    const plain = proc.url.replace(/^wss:/, 'ws:');
    const err = await Agent.connect(plain, { token: TOKEN, reconnect: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/speaks TLS: connect with wss:\/\//);
  });
});
