import type { Progress } from '@kindling/protocol';

/** What a long or creating call accepts besides its arguments (`vol.clone({ name, onProgress })`, `vol.delete({ timeoutMs })`). */
export interface CallOptions {
  /**
   * The request id to send instead of a fresh one: give the `details.requestId` of a call that failed
   * with TIMEOUT or UNAVAILABLE to get its outcome (the clone it made) instead of doing the work again.
   * The agent keeps outcomes for hours.
   */
  requestId?: string;
  /** This call's deadline in ms; default by op (see ConnectOptions: none for long operations). 0: none. */
  timeoutMs?: number;
  /** Each progress push of the copy this call started. */
  onProgress?: (progress: Progress) => void;
}

/** Splits a method's options into the op's arguments and the call's own options. */
export function splitCall<T extends CallOptions>(options: T): { args: Omit<T, keyof CallOptions>; call: CallOptions } {
  const { requestId, timeoutMs, onProgress, ...args } = options;
  return { args, call: { requestId, timeoutMs, onProgress } };
}
