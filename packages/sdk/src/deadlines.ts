import { MUTATING_OPS, type KindlingError, type OpName } from '@kindling/protocol';
import type { ConnectOptions } from './options.js';

/**
 * Ops that copy or zero data and so take as long as the data is big: a 100 GiB clone outlasts any fixed
 * deadline. They get none by default while keepalive pings watch the link (a dead link is dropped and the
 * call re-sent), so the caller gets the outcome instead of a TIMEOUT while the agent finishes.
 */
export const LONG_OPS: ReadonlySet<OpName> = new Set<OpName>([
  'volume.clone',
  'snapshot.createVolume',
  'volume.copyFrom',
  'volume.revert',
  'volume.extend',
  // Thick LVM volumes are zeroed on delete; an NFS snapshot delete commits its data into the base.
  'volume.delete',
  'snapshot.delete',
  'group.delete',
]);

/** Each kind of call's deadline, from the options: one place that says which op waits how long. */
export class Deadlines {
  readonly connectMs: number;
  readonly readMs: number;
  readonly changeMs: number;
  readonly longMs: number;

  constructor(options: ConnectOptions, keepaliveMs: number) {
    this.changeMs = options.timeoutMs ?? 120_000;
    this.connectMs = options.connectTimeoutMs ?? Math.min(this.changeMs, 10_000);
    this.readMs = options.readTimeoutMs ?? Math.min(this.changeMs, 30_000);
    // Without pings nothing notices a dead link, so long calls fall back to the short deadline.
    this.longMs = options.longTimeoutMs ?? (keepaliveMs > 0 ? 0 : this.changeMs);
  }

  of(op: OpName): number {
    return LONG_OPS.has(op) ? this.longMs : MUTATING_OPS.has(op) ? this.changeMs : this.readMs;
  }
}

/** Default BUSY back-off when the agent names none, and the most the SDK waits on its word. */
const BUSY_DEFAULT_MS = 100;
const BUSY_MAX_MS = 30_000;

/**
 * A call's deadline: after `ms` (never when 0) it expires with `reason()`, and the one step the call
 * waits in at that moment (a redial, the reply, a BUSY back-off) hears it through `watch`. A plain timer
 * and one watcher slot, not an AbortController: its EventTarget cost more than the rest of the SDK's
 * side of a `volume.get` (issue 20). Node keeps timers of one duration in one list behind one system
 * timer, so a timer per call is already the shared wheel.
 */
export class Deadline {
  /** Why the call is over, once the deadline has passed. */
  reason: KindlingError | null = null;
  #watcher: ((reason: KindlingError) => void) | null = null;
  readonly #timer: NodeJS.Timeout | null;

  constructor(ms: number, reason: () => KindlingError) {
    this.#timer = ms > 0 ? setTimeout(() => this.#expire(reason()), ms) : null;
  }

  /** `fn` hears the expiry if it comes while it is the watcher; a call waits in one step at a time. */
  watch(fn: (reason: KindlingError) => void): void {
    this.#watcher = fn;
  }

  unwatch(): void {
    this.#watcher = null;
  }

  /** The call has its answer: no expiry follows. */
  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#watcher = null;
  }

  #expire(reason: KindlingError): void {
    this.reason = reason;
    const watcher = this.#watcher;
    this.#watcher = null;
    watcher?.(reason);
  }
}

/** Waits `ms`, or rejects with the deadline's reason once it expires. */
export function pause(ms: number, deadline: Deadline): Promise<void> {
  if (deadline.reason) return Promise.reject(deadline.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      deadline.unwatch();
      resolve();
    }, ms);
    deadline.watch((reason) => {
      clearTimeout(timer);
      reject(reason);
    });
  });
}

/** The agent's back-off for a BUSY refusal, bounded, with jitter so that refused clients do not return in lockstep. */
export function busyDelay(error: KindlingError): number {
  const asked = error.details.retryAfterMs;
  const ms = typeof asked === 'number' && Number.isFinite(asked) && asked >= 0 ? Math.min(asked, BUSY_MAX_MS) : BUSY_DEFAULT_MS;
  return ms * (1 + Math.random() / 2);
}
