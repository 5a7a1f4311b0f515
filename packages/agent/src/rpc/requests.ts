import { randomUUID } from 'node:crypto';
import {
  CREATING_OPS,
  InvalidArgumentError,
  errorFromInfo,
  toErrorInfo,
  type ConnectionRecord,
  type ErrorInfo,
  type GroupSnapshotRecord,
  type OpName,
  type SnapshotRecord,
  type VolumeRecord,
} from '@kindling/protocol';
import type { IndexStore, RequestMark } from '../index/store.js';
import type { Follow } from './follow.js';

/** What a finished request answered. */
export type Outcome = { ok: true; result: unknown } | { ok: false; error: ErrorInfo };

/**
 * A request's entry. Its mark (`resourceId`, `record`) is written by the service in the same synced
 * batch as the op's first change (see requestMark); `outcome` replaces it when the request ends.
 */
interface Entry {
  op: OpName;
  at: number;
  /** The resource the op makes or changes. */
  resourceId?: string;
  /** That resource as the op's first change wrote it: what a delete cut by a crash answers. */
  record?: unknown;
  outcome?: Outcome;
}

const isEntry = (x: unknown): x is Entry =>
  typeof x === 'object' && x !== null && typeof (x as Entry).op === 'string' && typeof (x as Entry).at === 'number';

/** How long outcomes are kept for retries: long enough for a client to ride out an agent restart or a long copy. */
export const REQUEST_RETENTION_MS = 24 * 60 * 60 * 1000;

/** Where a request's resource is found again after a restart. */
export interface ResourceLookup {
  volume(id: string): VolumeRecord | undefined;
  snapshot(id: string): SnapshotRecord | undefined;
  connection(id: string): ConnectionRecord | undefined;
  group?(id: string): GroupSnapshotRecord | undefined;
}

/** What a call needs to know of its request: the id of the resource it makes, fixed before it runs. */
export interface CallContext {
  newId: string;
  /** Aborted when the client cancels the request (only requests with a requestId can be). */
  signal?: AbortSignal;
  /** The request's ledger entry for the resource its first change writes (request-context's requestMark). */
  mark?: (record: { id: string }) => RequestMark;
  /** The calling session's push filter (events.follow). */
  follow?: Follow;
}

/**
 * Exactly-once mutations by client request id, the agent's one ledger. A request id is claimed in the
 * same turn its frame arrives, so a second frame with it (a retry racing the first) waits for the first.
 * A retry of a finished request gets its recorded outcome. One cut short by a crash is answered from its
 * mark and what recovery left: a create or connect hands back what it made, a delete or disconnect whose
 * resource is gone answers success, an extend whose volume has grown or a revert the state it settled
 * in; otherwise it runs again, which the services make safe (deletes and reverts resume).
 */
export class RequestLedger {
  private readonly running = new Map<string, { op: OpName; outcome: Promise<Outcome>; cancel: AbortController }>();

  constructor(
    private readonly index: IndexStore,
    private readonly resources: ResourceLookup,
  ) {}

  run(requestId: string, op: OpName, work: (call: CallContext) => Promise<unknown>): Promise<unknown> {
    const live = this.running.get(requestId);
    if (live) return live.op === op ? live.outcome.then(settle) : Promise.reject(reused(requestId, live.op, op));
    // Check and claim with no await between them.
    const cancel = new AbortController();
    const outcome = this.answer(requestId, op, (call) => work({ ...call, signal: cancel.signal }));
    this.running.set(requestId, { op, outcome, cancel });
    const release = () => this.running.delete(requestId);
    outcome.then(release, release);
    return outcome.then(settle);
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

  private async answer(requestId: string, op: OpName, work: (call: CallContext) => Promise<unknown>): Promise<Outcome> {
    const stored = await this.index.getRequest(requestId);
    const entry = isEntry(stored) ? stored : undefined;
    if (entry && entry.op !== op) return { ok: false, error: toErrorInfo(reused(requestId, entry.op, op)) };
    if (entry?.outcome) return entry.outcome;
    const found = entry && this.found(op, entry);
    if (found) return found;
    // A create that had written its record and lost it since runs again under the id it recorded.
    const newId = (CREATING_OPS.has(op) && entry?.resourceId) || randomUUID();
    const at = Date.now();
    const mark = (record: { id: string }): RequestMark => ({ requestId, entry: { op, at, resourceId: record.id, record } });
    let outcome: Outcome;
    try {
      outcome = { ok: true, result: await work({ newId, mark }) };
    } catch (err) {
      outcome = { ok: false, error: toErrorInfo(err) };
    }
    await this.index.putRequest(requestId, { op, at, outcome } satisfies Entry);
    return outcome;
  }

  /** The outcome a request cut short by a crash reached, read from its mark and the index; undefined: run it again. */
  private found(op: OpName, entry: Entry): Outcome | undefined {
    const id = entry.resourceId;
    if (id === undefined) return undefined;
    switch (op) {
      case 'volume.create':
      case 'volume.clone':
      case 'snapshot.createVolume':
      case 'volume.copyFrom':
      case 'volume.revert':
        return reached(this.resources.volume(id));
      case 'snapshot.create':
        return reached(this.resources.snapshot(id));
      case 'group.create': {
        // Recovery removes a group cut short, so one still here is whole: anything else runs again under its id.
        const group = this.resources.group?.(id);
        return group?.status === 'available' ? { ok: true, result: group } : undefined;
      }
      case 'volume.extend': {
        // Grown since the extend started: recovery found the new size on storage, so the extend is done.
        const volume = this.resources.volume(id);
        return volume && volume.size > (entry.record as VolumeRecord).size ? reached(volume) : undefined;
      }
      case 'volume.delete':
        return this.resources.volume(id) ? undefined : { ok: true, result: { ...(entry.record as VolumeRecord), status: 'deleted' } };
      case 'snapshot.delete':
        return this.resources.snapshot(id) ? undefined : { ok: true, result: { ...(entry.record as SnapshotRecord), status: 'deleted' } };
      case 'group.delete':
        return this.resources.group?.(id) ? undefined : { ok: true, result: { ...(entry.record as GroupSnapshotRecord), status: 'deleted' } };
      case 'volume.attach':
      case 'volume.connect': {
        const connection = this.resources.connection(id);
        const volume = connection && this.resources.volume(connection.volumeId);
        return connection && volume ? { ok: true, result: { volume, connection } } : undefined;
      }
      case 'volume.detach':
      case 'connection.delete': {
        const connection = entry.record as ConnectionRecord;
        const volume = this.resources.volume(connection.volumeId);
        if (this.resources.connection(id) || !volume) return undefined;
        return { ok: true, result: { volume, connection: { ...connection, attached: false } } };
      }
      default:
        return undefined;
    }
  }
}

/** The state recovery settled a resource in: its kept error, or the record. */
function reached(record: VolumeRecord | SnapshotRecord | undefined): Outcome | undefined {
  if (!record) return undefined;
  return record.status === 'error' && record.error ? { ok: false, error: record.error } : { ok: true, result: record };
}

const reused = (requestId: string, was: OpName, now: OpName) =>
  new InvalidArgumentError(`requestId ${requestId} was used for ${was}, not ${now}`, { requestId, op: was });

function settle(outcome: Outcome): unknown {
  if (outcome.ok) return outcome.result;
  throw errorFromInfo(outcome.error);
}
