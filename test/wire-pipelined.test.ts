import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, decode, encode, type ReplyFrame } from '@kindling/protocol';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

const TOKEN = 'test-token-0123456789abcdef';
let agent: AgentProcess;

beforeAll(async () => {
  agent = await startAgentProcess({ token: TOKEN });
});
afterAll(async () => {
  await agent?.dispose();
});

/** A client's binary frame: FIN, opcode 2, masked (RFC 6455, 5.2). */
function clientFrame(payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const length = payload.length < 126 ? Buffer.from([0x80 | payload.length]) : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from([0x82]), length, mask, masked]);
}

/** Reads the upgrade answer, then `count` unmasked server frames, decoded. */
async function readReplies(socket: Socket, count: number): Promise<{ status: string; frames: ReplyFrame[] }> {
  let buffered = Buffer.alloc(0);
  let status = '';
  const frames: ReplyFrame[] = [];
  for await (const chunk of socket) {
    buffered = Buffer.concat([buffered, chunk as Buffer]);
    if (!status) {
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) continue;
      status = buffered.subarray(0, buffered.indexOf('\r\n')).toString();
      buffered = buffered.subarray(end + 4);
    }
    for (;;) {
      if (buffered.length < 2) break;
      const short = (buffered[1] as number) & 0x7f;
      const [start, length] = short === 126 ? [4, buffered.readUInt16BE(2)] : short === 127 ? [10, Number(buffered.readBigUInt64BE(2))] : [2, short];
      if (buffered.length < start + length) break;
      // Binary frames only: a heartbeat ping (opcode 9) carries no reply.
      if (((buffered[0] as number) & 0x0f) === 2) frames.push(decode(buffered.subarray(start, start + length)) as ReplyFrame);
      buffered = buffered.subarray(start + length);
    }
    if (frames.length >= count) break;
  }
  return { status, frames };
}

describe('frames pipelined behind the upgrade request', () => {
  it('answers frames a client sent in the same write as its upgrade request', async () => {
    // The agent takes frames from ws itself, not through hono's buffering (issue 20): frames already in
    // the upgrade's first read must still reach the session, in order.
    const socket = connect(agent.port, '127.0.0.1');
    await once(socket, 'connect');
    const upgrade = [
      'GET /rpc HTTP/1.1',
      `Host: 127.0.0.1:${agent.port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      `Authorization: Bearer ${TOKEN}`,
      '',
      '',
    ].join('\r\n');
    socket.write(
      Buffer.concat([
        Buffer.from(upgrade),
        clientFrame(encode({ id: 1, op: 'hello', args: { protocolVersion: PROTOCOL_VERSION } })),
        clientFrame(encode({ id: 2, op: 'backend.list', args: {} })),
      ]),
    );
    const { status, frames } = await readReplies(socket, 2);
    socket.destroy();
    expect(status).toBe('HTTP/1.1 101 Switching Protocols');
    expect(frames.map((f) => [f.id, f.ok])).toEqual([
      [1, true],
      [2, true],
    ]);
  }, 10_000);
});
