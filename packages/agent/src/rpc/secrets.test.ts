import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PROTOCOL_VERSION,
  decode,
  encode,
  type AttachmentResult,
  type ConnectionRecord,
  type EventFrame,
  type ReplyFrame,
  type VolumeRecord,
} from '@kindling/protocol';
import { startAgent, type RunningAgent } from '../agent.js';
import { parseConfig } from '../config.js';

// What a read-only credential (a scraper's, a dashboard's) may see of an iSCSI connection: no CHAP secret.
const TOKEN = 'secrets-admin-token-0123456789';
const READ_TOKEN = 'secrets-read-token-0123456789';
const CHAP = { auth_method: 'CHAP', auth_username: 'chapuser0123456789ab', auth_password: 'chapsecret012345' };

let dir: string;
let agent: RunningAgent;
let admin: Peer;
let reader: Peer;
let volume: VolumeRecord;
let connection: ConnectionRecord;

/** One /rpc session: replies by id, pushed events kept in order. */
class Peer {
  private next = 1;
  private readonly waiting = new Map<number, (frame: ReplyFrame) => void>();
  readonly events: EventFrame[] = [];
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const frame = decode(data) as ReplyFrame | EventFrame;
      if ('event' in frame) this.events.push(frame);
      else if (frame.id !== null) this.waiting.get(frame.id)?.(frame);
    });
  }
  static async open(token: string): Promise<Peer> {
    const ws = new WebSocket(agent.url, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const peer = new Peer(ws);
    await peer.call('hello', { protocolVersion: PROTOCOL_VERSION });
    return peer;
  }
  call(op: string, args: unknown, requestId?: string): Promise<ReplyFrame> {
    const id = this.next++;
    const reply = new Promise<ReplyFrame>((resolve) => this.waiting.set(id, resolve));
    this.ws.send(encode({ id, op, args, ...(requestId ? { requestId } : {}) }));
    return reply;
  }
  async result<T>(op: string, args: unknown, requestId?: string): Promise<T> {
    const reply = await this.call(op, args, requestId);
    if (!reply.ok) throw new Error(`${op}: ${reply.error.code} ${reply.error.message}`);
    return reply.result as T;
  }
  close(): void {
    this.ws.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-secrets-'));
  const config = parseConfig(
    { listen: { port: 0 }, dataDir: 'data', token: TOKEN, readTokens: [READ_TOKEN], backends: [{ name: 'nfs', driver: 'nfs', shares: ['share'] }] },
    dir,
  );
  agent = await startAgent(config);
  admin = await Peer.open(TOKEN);
  reader = await Peer.open(READ_TOKEN);
  volume = await admin.result<VolumeRecord>('volume.create', { backend: 'nfs', size: 1 }, 'secrets-create');
  const made = await admin.result<AttachmentResult>('volume.connect', { id: volume.id, connector: { initiator: 'iqn.1994-05.com.redhat:peer' } }, 'secrets-connect');
  // The record an LVM backend's iSCSI connect leaves in the index (this host has no target to make one).
  connection = { ...made.connection, connectionInfo: { driverVolumeType: 'iscsi', data: { target_lun: 0, ...CHAP } } };
  await agent.services.index.putConnection(connection, made.volume);
});
afterAll(async () => {
  admin?.close();
  reader?.close();
  await agent?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const secretsIn = (value: unknown): string[] =>
  [CHAP.auth_username, CHAP.auth_password].filter((secret) => JSON.stringify(value).includes(secret));

describe('secrets and roles', () => {
  it('an admin reads the CHAP credentials of a connection', async () => {
    const got = await admin.result<ConnectionRecord>('connection.get', { id: connection.id });
    expect(got.connectionInfo.data).toMatchObject(CHAP);
  });

  it('a read session sees connections without their CHAP credentials, in every read', async () => {
    for (const [op, args] of [
      ['volume.list', {}],
      ['volume.list', { id: volume.id }],
      ['connection.get', { id: connection.id }],
      ['connection.list', { volumeId: volume.id }],
      ['changes.list', { epoch: agent.services.index.changes.position().epoch, since: 0, limit: 100 }],
    ] as const) {
      const result = await reader.result(op, args);
      expect(JSON.stringify(result)).toContain(connection.id);
      expect(secretsIn(result), op).toEqual([]);
    }
    const got = await reader.result<ConnectionRecord>('connection.get', { id: connection.id });
    expect(got.connectionInfo.data).toEqual({ target_lun: 0, auth_method: 'CHAP' });
  });

  it('a read session cannot cancel a request', async () => {
    const reply = await reader.call('request.cancel', { requestId: 'any-request' });
    expect(reply).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
  });

  it('pushed connection events reach a read session without the CHAP credentials', async () => {
    const done = await admin.result<AttachmentResult>('connection.delete', { id: connection.id }, 'secrets-disconnect');
    expect(done.connection.connectionInfo.data).toMatchObject(CHAP);
    while (!reader.events.some((e) => e.event === 'connection.deleted')) await new Promise((r) => setTimeout(r, 5));
    const pushed = reader.events.filter((e) => e.event === 'connection.deleted');
    expect(pushed.map((e) => e.resource.id)).toEqual([connection.id]);
    expect(secretsIn(pushed)).toEqual([]);
    expect(secretsIn(admin.events.filter((e) => e.event === 'connection.deleted'))).toEqual([CHAP.auth_username, CHAP.auth_password]);
  });
});
