import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** A TCP relay in front of an agent that can cut every link and refuse new ones: a network partition. */
export class Relay {
  readonly #sockets = new Set<Socket>();
  #open = true;
  readonly #server: Server;
  port = 0;
  /** Bytes the agent has sent through the relay: what a client's reads cost on the wire. */
  received = 0;

  constructor(target: number) {
    this.#server = createServer((client) => {
      if (!this.#open) return client.destroy();
      const upstream = connect(target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.#sockets.delete(s));
      }
      upstream.on('data', (chunk: Buffer) => (this.received += chunk.length));
      client.pipe(upstream).pipe(client);
    });
  }

  static async start(target: number): Promise<Relay> {
    const relay = new Relay(target);
    relay.#server.listen(0, '127.0.0.1');
    await once(relay.#server, 'listening');
    relay.port = (relay.#server.address() as { port: number }).port;
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Every link cut; new ones refused until `heal()`. */
  cut(): void {
    this.#open = false;
    for (const s of this.#sockets) s.destroy();
  }

  /** Data stops flowing but no socket closes: a dead host or a dropped route, as the client sees it. */
  freeze(): void {
    this.#open = false;
    for (const s of this.#sockets) {
      s.unpipe();
      s.pause();
    }
  }

  heal(): void {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
