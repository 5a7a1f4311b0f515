import type { ErrorInfo } from './errors.js';
import { ProtocolError } from './errors.js';
import type { OpName } from './ops.js';
import type { BackendStats, ConnectionRecord, SnapshotRecord, VolumeRecord } from './records.js';
import { isObject } from './util.js';

export interface RequestFrame {
  id: number;
  op: OpName;
  args: unknown;
  /**
   * The client's own id for a mutating request: a retry with the same id (after a lost reply, a
   * reconnect or an agent restart) gets the first outcome instead of doing the work again.
   */
  requestId?: string;
}
export interface OkReplyFrame {
  id: number;
  ok: true;
  result: unknown;
}
export interface ErrorReplyFrame {
  id: number | null;
  ok: false;
  error: ErrorInfo;
}
export type ReplyFrame = OkReplyFrame | ErrorReplyFrame;

/**
 * Pushed by the agent to every session on each change; `resource` is the whole new state. `seq`: the
 * agent's change sequence (ChangePosition.seq) up to which every change has been pushed when this one is.
 */
export type EventFrame = EventBody & { seq?: number };
type EventBody =
  | { event: 'volume'; resource: VolumeRecord }
  | { event: 'snapshot'; resource: SnapshotRecord }
  | { event: 'connection'; resource: ConnectionRecord }
  | { event: 'connection.deleted'; resource: ConnectionRecord }
  | { event: 'capacity'; resource: BackendStats }
  | { event: 'progress'; resource: Progress };

/** How far a long copy has got (clone, volume from snapshot, revert, zeroing). */
export interface Progress {
  kind: 'volume' | 'snapshot';
  /** The resource the operation is for (the new volume of a clone). */
  id: string;
  op: OpName | 'volume.clear';
  doneBytes: number;
  totalBytes: number;
  /** The client's request id of the operation, when it sent one: a client can follow a create before its reply. */
  requestId?: string;
}

export type ServerFrame = ReplyFrame | EventFrame;

/** A request id: printable, at most 128 characters (a UUID is the SDK's choice). */
const REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;

/** The id of a request frame, when it has a valid one, so even a malformed frame gets a reply it can match. */
export function requestIdOf(frame: unknown): number | null {
  if (!isObject(frame)) return null;
  const { id } = frame;
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : null;
}

/** Shape check of a decoded client frame; the op's own schema checks `args` after this. */
export function parseRequestFrame(frame: unknown): Omit<RequestFrame, 'op'> & { op: unknown } {
  if (!isObject(frame)) throw new ProtocolError('a request frame must be a map');
  const { id, op, args, requestId } = frame;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    throw new ProtocolError('a request frame needs a non-negative integer id');
  }
  const extra = Object.keys(frame).filter((k) => k !== 'id' && k !== 'op' && k !== 'args' && k !== 'requestId');
  if (extra.length > 0) throw new ProtocolError(`unknown request frame fields: ${extra.join(', ')}`, { id });
  if (requestId === undefined) return { id, op, args };
  if (typeof requestId !== 'string' || !REQUEST_ID_RE.test(requestId)) {
    throw new ProtocolError('requestId must be 1-128 printable characters', { id });
  }
  return { id, op, args, requestId };
}
