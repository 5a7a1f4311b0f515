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

/** A signal aborted with `reason()` after `ms` (none when `ms` is 0), and its stopper. */
export function deadline(ms: number, reason: () => KindlingError): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  if (ms <= 0) return { signal: controller.signal, clear: () => undefined };
  const timer = setTimeout(() => controller.abort(reason()), ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

/** Waits `ms`, or rejects with the signal's reason once it aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as KindlingError);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The agent's back-off for a BUSY refusal, bounded, with jitter so that refused clients do not return in lockstep. */
export function busyDelay(error: KindlingError): number {
  const asked = error.details.retryAfterMs;
  const ms = typeof asked === 'number' && Number.isFinite(asked) && asked >= 0 ? Math.min(asked, BUSY_MAX_MS) : BUSY_DEFAULT_MS;
  return ms * (1 + Math.random() / 2);
}
