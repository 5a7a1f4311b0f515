import { randomUUID } from 'node:crypto';
import {
  CREATING_OPS,
  InvalidArgumentError,
  errorFromInfo,
  toErrorInfo,
  type ErrorInfo,
  type OpName,
  type SnapshotRecord,
  type VolumeRecord,
} from '@kindling/protocol';
import type { IndexStore } from '../index/store.js';

/** What a finished request answered. */
export type Outcome = { ok: true; result: unknown } | { ok: false; error: ErrorInfo };

/** `started` is written (synced) before a creating op runs, naming the resource it makes; `done` after. */
interface Entry {
  op: OpName;
  at: number;
  resourceId?: string;
  outcome?: Outcome;
}

const isEntry = (x: unknown): x is Entry =>
  typeof x === 'object' && x !== null && typeof (x as Entry).op === 'string' && typeof (x as Entry).at === 'number';

/** How long outcomes are kept for retries: long enough for a client to ride out an agent restart or a long copy. */
export const REQUEST_RETENTION_MS = 24 * 60 * 60 * 1000;

/** Where a creating op's resource is found again after a restart. */
export interface ResourceLookup {
  volume(id: string): VolumeRecord | undefined;
  snapshot(id: string): SnapshotRecord | undefined;
}

/** What a call needs to know of its request: the id of the resource it makes, fixed before it runs. */
export interface CallContext {
  newId: string;
  /** Aborted when the client cancels the request (only requests with a requestId can be). */
  signal?: AbortSignal;
}

/**
 * Exactly-once mutations by client request id. A retry of a finished request gets its recorded outcome;
 * one still running waits for it; a creating op cut short by a restart hands back the resource it had
 * started (its id was recorded before it ran), or runs again with that same id if it never got that far.
 */
export class RequestLedger {
  private readonly running = new Map<string, { op: OpName; outcome: Promise<Outcome>; cancel: AbortController }>();

  constructor(
    private readonly index: IndexStore,
    private readonly resources: ResourceLookup,
  ) {}

  async run(requestId: string, op: OpName, work: (call: CallContext) => Promise<unknown>): Promise<unknown> {
    const live = this.running.get(requestId);
    if (live) {
      this.sameOp(requestId, live.op, op);
      return settle(await live.outcome);
    }
    const stored = await this.index.getRequest(requestId);
    const entry = isEntry(stored) ? stored : undefined;
    if (entry) this.sameOp(requestId, entry.op, op);
    if (entry?.outcome) return settle(entry.outcome);
    if (entry?.resourceId) {
      const found = this.found(op, entry.resourceId);
      if (found) return settle(found);
    }
    const cancel = new AbortController();
    const outcome = this.start(requestId, op, entry?.resourceId, (call) => work({ ...call, signal: cancel.signal }));
    this.running.set(requestId, { op, outcome, cancel });
    try {
      return settle(await outcome);
    } finally {
      this.running.delete(requestId);
    }
  }

  /**
   * Cancels a request that still waits for its turn (its locks): it is refused with CONFLICT and changes
   * nothing. True when it was cancelled; false when it is unknown, finished, or already running.
   */
  async cancel(requestId: string): Promise<boolean> {
    const live = this.running.get(requestId);
    if (!live) return false;
    live.cancel.abort();
    // A waiter refuses at once; one that already started runs on, and its outcome is not awaited here.
    const settled = await Promise.race([live.outcome, new Promise<null>((r) => setTimeout(() => r(null), 1000).unref())]);
    return settled !== null && !settled.ok && settled.error.details?.cancelled === true;
  }

  /** Drops outcomes older than the retention. */
  prune(now = Date.now()): Promise<number> {
    return this.index.pruneRequests((e) => !isEntry(e) || now - e.at > REQUEST_RETENTION_MS);
  }

  private async start(
    requestId: string,
    op: OpName,
    knownId: string | undefined,
    work: (call: CallContext) => Promise<unknown>,
  ): Promise<Outcome> {
    const newId = knownId ?? randomUUID();
    const at = Date.now();
    if (CREATING_OPS.has(op) && !knownId) await this.index.putRequest(requestId, { op, at, resourceId: newId }, true);
    let outcome: Outcome;
    try {
      outcome = { ok: true, result: await work({ newId }) };
    } catch (err) {
      outcome = { ok: false, error: toErrorInfo(err) };
    }
    await this.index.putRequest(requestId, { op, at, resourceId: newId, outcome }, false);
    return outcome;
  }

  /** The outcome a restarted creating op already reached: its record, or the error it was left in. */
  private found(op: OpName, id: string): Outcome | undefined {
    const record = op === 'snapshot.create' ? this.resources.snapshot(id) : this.resources.volume(id);
    if (!record) return undefined;
    return record.status === 'error' && record.error ? { ok: false, error: record.error } : { ok: true, result: record };
  }

  private sameOp(requestId: string, was: OpName, now: OpName): void {
    if (was !== now) {
      throw new InvalidArgumentError(`requestId ${requestId} was used for ${was}, not ${now}`, { requestId, op: was });
    }
  }
}

function settle(outcome: Outcome): unknown {
  if (outcome.ok) return outcome.result;
  throw errorFromInfo(outcome.error);
}
