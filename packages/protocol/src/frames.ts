import type { ErrorInfo } from './errors.js';
import { ProtocolError } from './errors.js';
import type { OpName } from './ops.js';
import type { BackendStats, ConnectionRecord, SnapshotRecord, VolumeRecord } from './records.js';

export interface RequestFrame {
  id: number;
  op: OpName;
  args: unknown;
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

/** Pushed by the agent to every session on each change; `resource` is the whole new state. */
export type EventFrame =
  | { event: 'volume'; resource: VolumeRecord }
  | { event: 'snapshot'; resource: SnapshotRecord }
  | { event: 'connection'; resource: ConnectionRecord }
  | { event: 'connection.deleted'; resource: ConnectionRecord }
  | { event: 'capacity'; resource: BackendStats };
export type EventName = EventFrame['event'];

export type ServerFrame = ReplyFrame | EventFrame;

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The id of a request frame, when it has a valid one, so even a malformed frame gets a reply it can match. */
export function requestIdOf(frame: unknown): number | null {
  if (!isObject(frame)) return null;
  const { id } = frame;
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : null;
}

/** Shape check of a decoded client frame; the op's own schema checks `args` after this. */
export function parseRequestFrame(frame: unknown): { id: number; op: unknown; args: unknown } {
  if (!isObject(frame)) throw new ProtocolError('a request frame must be a map');
  const { id, op, args } = frame;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    throw new ProtocolError('a request frame needs a non-negative integer id');
  }
  const extra = Object.keys(frame).filter((k) => k !== 'id' && k !== 'op' && k !== 'args');
  if (extra.length > 0) throw new ProtocolError(`unknown request frame fields: ${extra.join(', ')}`, { id });
  return { id, op, args };
}

export function isEventFrame(frame: ServerFrame): frame is EventFrame {
  return 'event' in frame;
}
