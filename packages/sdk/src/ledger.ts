/**
 * The SDK's half of exactly-once, in one place: which request id a call goes out with, how one call is
 * sent again (the very same frame, the same id) across redials and BUSY refusals until it has an
 * answer, what a caller is told when the outcome is unknown, and the replies to creating calls that
 * arrive after their caller gave up. The agent's half answers a known id with its first outcome
 * (docs/api.md, "requestId"), so a call sent again is still one operation.
 */
import { randomUUID } from 'node:crypto';
import {
  CREATING_OPS,
  InvalidArgumentError,
  MUTATING_OPS,
  UnavailableError,
  messageOf,
  parseRequestFrame,
  type KindlingError,
  type OpName,
  type RequestFrame,
} from '@kindling/protocol';
import { busyDelay, pause, type Deadline } from './deadlines.js';

/** A request frame before the socket it goes out on numbers it: kept for the call's life, so a resend is the very same request. */
export type Frame = Omit<RequestFrame, 'id'>;

/** How one exchange ended: a reply, or the link went before one came. */
export type Outcome = { ok: true; result: unknown } | { ok: false; error: KindlingError } | { ok: 'lost' };

/**
 * The id a call goes out with: the caller's (checked by the agent's rule before anything is sent),
 * else a fresh UUID for a mutating op, so a resend is answered from its outcome; else none.
 */
export function requestIdFor(op: OpName, given: string | undefined): string | undefined {
  if (given === undefined) return MUTATING_OPS.has(op) ? randomUUID() : undefined;
  try {
    parseRequestFrame({ id: 0, op, args: null, requestId: given });
  } catch (err) {
    throw new InvalidArgumentError(messageOf(err), { op, requestId: given });
  }
  return given;
}

/** What one send needs of the link: to wait until it is open, and one exchange on it. */
export interface Link {
  /** Null when open; else resolves once open (after a redial), rejects when it will not be in time or the deadline passes. */
  whenOpen(deadline: Deadline): Promise<void> | null;
  exchange(frame: Frame, deadline: Deadline): Promise<Outcome>;
  /** After a lost exchange: null when a redial is coming (send again), else why the call is over. */
  lost(): KindlingError | null;
}

/**
 * Sends `frame` until it gets a reply that is not BUSY (or BUSY more than `busyRetries` times), sending
 * it again after each drop. A call with a request id that ends UNAVAILABLE names the id in
 * `details.requestId` (its outcome is unknown: the caller may ask again with it).
 */
export async function deliver(link: Link, frame: Frame, deadline: Deadline, busyRetries: number): Promise<unknown> {
  try {
    for (let busy = 0; ; ) {
      const opening = link.whenOpen(deadline);
      if (opening) await opening;
      const outcome = await link.exchange(frame, deadline);
      if (outcome.ok === true) return outcome.result;
      if (outcome.ok === 'lost') {
        const over = link.lost();
        if (over) throw over;
        continue;
      }
      if (outcome.error.code !== 'BUSY' || busy >= busyRetries) throw outcome.error;
      busy++;
      await pause(busyDelay(outcome.error), deadline);
    }
  } catch (err) {
    const { op, requestId } = frame;
    if (requestId !== undefined && err instanceof UnavailableError) throw new UnavailableError(err.message, { ...err.details, op, requestId }, { cause: err });
    throw err;
  }
}

/**
 * Creating calls whose caller stopped waiting (its deadline passed) by the number of the frame that
 * carried them: their reply may still come, and what it made can be adopted (`late`). Forgotten when
 * the link drops: a reply never crosses links.
 */
export class LateReplies {
  readonly #frames = new Map<number, Frame>();

  /** The caller gave up on frame `id`; worth remembering only for a creating call with a request id. */
  abandoned(id: number, frame: Frame): void {
    if (frame.requestId !== undefined && CREATING_OPS.has(frame.op)) this.#frames.set(id, frame);
  }

  /** The late reply to frame `id`, as the `late` event carries it, when it was a creating call's success. */
  take(id: number, outcome: Outcome): { op: OpName; requestId: string; result: unknown } | null {
    const frame = this.#frames.get(id);
    if (!frame?.requestId) return null;
    this.#frames.delete(id);
    return outcome.ok === true ? { op: frame.op, requestId: frame.requestId, result: outcome.result } : null;
  }

  clear(): void {
    this.#frames.clear();
  }
}
