import WebSocket from 'ws';
import { PROTOCOL_VERSION, decode, encode, type EventFrame, type ReplyFrame, type ServerFrame } from '@kindling/protocol';

/** A bare msgpack-over-WebSocket peer, for what the SDK would never send (bad frames, bad args). */
export class RawClient {
  private nextId = 1;
  private readonly waiting = new Map<number | null, (frame: ReplyFrame) => void>();
  readonly events: EventFrame[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const frame = decode(data) as ServerFrame;
      if ('event' in frame) {
        this.events.push(frame);
        return;
      }
      const resolve = this.waiting.get(frame.id);
      this.waiting.delete(frame.id);
      resolve?.(frame);
    });
  }

  static async connect(url: string, token: string | undefined = process.env.KINDLING_TOKEN, hello = true): Promise<RawClient> {
    const ws = new WebSocket(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    const client = new RawClient(ws);
    if (hello) await client.call('hello', { protocolVersion: PROTOCOL_VERSION });
    return client;
  }

  call(op: string, args: unknown): Promise<ReplyFrame> {
    return this.sendFrame({ id: this.nextId++, op, args });
  }

  /** Sends any value as a frame; resolves with the reply to its id (or to id null for undecodable ones). */
  sendFrame(frame: unknown, replyId: number | null = (frame as { id?: number }).id ?? null): Promise<ReplyFrame> {
    return this.sendBytes(encode(frame), replyId);
  }

  sendBytes(bytes: Uint8Array | string, replyId: number | null): Promise<ReplyFrame> {
    const reply = new Promise<ReplyFrame>((resolve) => this.waiting.set(replyId, resolve));
    this.ws.send(bytes);
    return reply;
  }

  close(): void {
    this.ws.close();
  }
}
