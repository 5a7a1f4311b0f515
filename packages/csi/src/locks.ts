import { status } from '@grpc/grpc-js';
import { CsiError } from './errors.js';

/**
 * One call at a time per CSI name or id, as the specification allows: a second call while the
 * first runs gets ABORTED, and the CO retries it with backoff. Nothing waits, so nothing piles up.
 */
export class InFlight {
  readonly #held = new Set<string>();

  async run<T>(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    const busy = keys.find((k) => this.#held.has(k));
    if (busy !== undefined) throw new CsiError(status.ABORTED, `an operation on ${busy} is already in progress`);
    for (const k of keys) this.#held.add(k);
    try {
      return await work();
    } finally {
      for (const k of keys) this.#held.delete(k);
    }
  }
}
