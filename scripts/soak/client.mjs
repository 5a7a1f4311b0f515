// A bare protocol client for the soak: every call settles, with the agent's reply or `cut` when the
// connection dies under it (the agent was killed), so the soak can tell the two apart.
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION, decode, encode } from '@kindling/protocol';

export class SoakClient {
  #ws;
  #next = 1;
  #waiting = new Map();

  constructor(ws) {
    this.#ws = ws;
    ws.on('message', (data) => {
      const frame = decode(data);
      if ('event' in frame) return;
      this.#waiting.get(frame.id)?.(frame.ok ? { ok: true, result: frame.result } : { ok: false, error: frame.error });
      this.#waiting.delete(frame.id);
    });
    ws.on('close', () => {
      for (const settle of this.#waiting.values()) settle({ cut: true });
      this.#waiting.clear();
    });
    ws.on('error', () => undefined);
  }

  static async connect(url, token = process.env.KINDLING_TOKEN) {
    const ws = new WebSocket(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const client = new SoakClient(ws);
    const hello = await client.call('hello', { protocolVersion: PROTOCOL_VERSION });
    if (!hello.ok) throw new Error(`hello refused: ${hello.error?.message ?? 'connection cut'}`);
    return client;
  }

  /** Resolves `{ ok, result }`, `{ ok: false, error }`, or `{ cut: true }`. */
  call(op, args) {
    if (this.#ws.readyState !== WebSocket.OPEN) return Promise.resolve({ cut: true });
    const id = this.#next++;
    const reply = new Promise((resolve) => this.#waiting.set(id, resolve));
    this.#ws.send(encode({ id, op, args }));
    return reply;
  }

  /** The result, or throws: for the checks between kills, where nothing may fail. */
  async must(op, args) {
    const reply = await this.call(op, args);
    if (!reply.ok) throw new Error(`${op} ${JSON.stringify(args)}: ${reply.cut ? 'connection cut' : `${reply.error.code} ${reply.error.message}`}`);
    return reply.result;
  }

  close() {
    this.#ws.close();
  }
}
