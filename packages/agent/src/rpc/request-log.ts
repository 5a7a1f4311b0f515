import { CREATING_OPS, MUTATING_OPS, isOpName, type ReplyFrame } from '@kindling/protocol';
import type { Logger } from '../log.js';

/** What one answered request was, for its log line. */
export interface RequestRecord {
  op: string;
  /** The client's `requestId`, when it sent one: it ties a retry, the client's log and this line together. */
  requestId?: string | undefined;
  args: unknown;
  reply: ReplyFrame;
  seconds: number;
  /** A bug of ours (not a Kindling error): its stack goes to the log, never on the wire. */
  bug?: unknown;
}

/** Argument keys that name resources; nothing else of the arguments (metadata, kv values, connectors) is logged. */
const RESOURCE_KEYS = ['backend', 'id', 'volumeId', 'snapshotId', 'key'] as const;

/** Failures that say the storage or the agent went wrong, not the caller: an operator should see them. */
const SERVER_SIDE = new Set(['BACKEND_ERROR', 'TIMEOUT', 'UNAVAILABLE']);

function resources(args: unknown, op: string, reply: ReplyFrame): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  if (typeof args === 'object' && args !== null) {
    for (const key of RESOURCE_KEYS) {
      const value = (args as Record<string, unknown>)[key];
      if (typeof value === 'string') picked[key] = value;
    }
  }
  // A creating op's new resource is named by its reply.
  if (reply.ok && isOpName(op) && CREATING_OPS.has(op)) {
    const id = (reply.result as { id?: unknown } | null)?.id;
    if (typeof id === 'string') picked.createdId = id;
  }
  return picked;
}

/**
 * One line per request: changes at info, reads at debug (dashboards poll), storage-side failures
 * at warn, bugs (INTERNAL) at error with their stack.
 */
export function logRequest(log: Logger, r: RequestRecord): void {
  const outcome = r.reply.ok ? 'ok' : r.reply.error.code;
  const changes = isOpName(r.op) && MUTATING_OPS.has(r.op);
  const level = SERVER_SIDE.has(outcome) ? 'warn' : outcome === 'INTERNAL' ? 'error' : changes || !r.reply.ok ? 'info' : 'debug';
  // Reads are most requests: at the usual levels their line is not even built.
  if (!log.isLevelEnabled(level)) return;
  const fields = {
    op: r.op,
    ...(r.requestId ? { requestId: r.requestId } : {}),
    ...resources(r.args, r.op, r.reply),
    outcome,
    durationMs: Math.round(r.seconds * 1000 * 10) / 10,
    ...(r.reply.ok ? {} : { error: r.reply.error.message }),
    ...(r.bug === undefined ? {} : { err: r.bug }),
  };
  log[level](fields, `${r.op} ${outcome}`);
}
