import type { Transport } from './transport.js';

/** cinderlib's KeyValue store, kept in the agent's index (e.g. to hand a node's connector to a controller). */
export class KeyValueStore {
  readonly #transport: Transport;

  /** @internal */
  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /** null when the key is not set. */
  async get(key: string): Promise<string | null> {
    return (await this.#transport.request('kv.get', { key })).value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.#transport.request('kv.set', { key, value });
  }

  /** Whether the key existed. */
  async delete(key: string): Promise<boolean> {
    return (await this.#transport.request('kv.delete', { key })).existed;
  }
}
