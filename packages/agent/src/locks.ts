import { ConflictError } from '@kindling/protocol';
import { requestCost } from './cost.js';
import { currentRequest } from './request-context.js';

/**
 * Per-key mutual exclusion, in arrival order: the service locks resources with it, the LVM driver its
 * VG queues. With `cancellable`, a request its client cancels while it still waits for its locks is
 * refused at once (CONFLICT: nothing ran); the service's locks are taken before any storage work, so
 * only they are cancellable, never a driver's queue in the middle of an operation.
 */
export class KeyedLocks {
  private readonly tails = new Map<string, Promise<unknown>>();
  private readonly watchers = new Set<Set<string>>();

  constructor(private readonly cancellable = false) {}

  /**
   * Records every key asked for from now until `stop()`, as it is asked for (before it waits): a key
   * not in `asked` has had no operation since the watch began, and one asked for later runs after.
   */
  watch(): { asked: ReadonlySet<string>; stop(): void } {
    const asked = new Set<string>();
    this.watchers.add(asked);
    return { asked, stop: () => void this.watchers.delete(asked) };
  }

  async with<T>(keys: string[], work: () => Promise<T>): Promise<T> {
    for (const asked of this.watchers) for (const key of keys) asked.add(key);
    // Sorted so two operations needing the same pair of locks cannot deadlock.
    const ordered = [...new Set(keys)].sort();
    const request = this.cancellable ? currentRequest() : undefined;
    if (request) request.queued = true;
    const cost = requestCost();
    const waiting = performance.now();
    const acquire = async (i: number): Promise<T> => {
      const key = ordered[i];
      if (key !== undefined) return this.withOne(key, () => acquire(i + 1), request?.signal);
      if (request) request.queued = false;
      cost?.add('locks', waiting);
      return work();
    };
    return acquire(0);
  }

  private async withOne<T>(key: string, work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let started = false;
    const turn = async (): Promise<T> => {
      if (signal?.aborted) throw cancelled();
      started = true;
      return work();
    };
    const current = previous.then(turn, turn);
    const tail = current.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    try {
      return await (signal ? cancelledWhileWaiting(current, signal, () => started) : current);
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

const cancelled = () => new ConflictError('cancelled by the client before it started', { cancelled: true });

/** `work`'s outcome, or a refusal as soon as `signal` aborts while it has not started. */
function cancelledWhileWaiting<T>(work: Promise<T>, signal: AbortSignal, started: () => boolean): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      if (!started()) reject(cancelled());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
