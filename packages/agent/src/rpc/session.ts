import { randomUUID } from 'node:crypto';
import {
  BusyError,
  CREATING_OPS,
  MUTATING_OPS,
  READ_OPS,
  InvalidArgumentError,
  KindlingError,
  ProtocolError,
  UnauthorizedError,
  decode,
  encode,
  isOpName,
  parseRequestFrame,
  requestIdOf,
  toErrorInfo,
  validateArgs,
  withoutSecrets,
  type EventFrame,
  type OpName,
  type ReplyFrame,
  type ServerFrame,
} from '@kindling/protocol';
import { newCost, writeCost, type Cost } from '../cost.js';
import { log as rootLog, type Logger } from '../log.js';
import { inRequest, type RequestContext } from '../request-context.js';
import type { Role } from './auth.js';
import type { Handlers } from './dispatch.js';
import type { Drain } from './drain.js';
import { Follow, type ProgressVolume } from './follow.js';
import type { Metrics } from './metrics.js';
import { logRequest } from './request-log.js';
import type { CallContext, RequestLedger } from './requests.js';

/** The socket as a session sees it. */
export interface FrameSink {
  send(bytes: Uint8Array): void;
  /** Bytes queued on the socket that the client has not read yet. */
  unsentBytes(): number;
  /** Drops the connection at once (a close frame could not get past a full buffer). */
  terminate(reason: string): void;
}

export interface SessionLimits {
  /** Requests one session may have running; beyond it a request is answered BUSY at once. */
  requestsInFlight: number;
  /** A client that lets more than this pile up unread is cut off, so it cannot grow the agent's memory. */
  unsentBytes: number;
}

/** How long a client refused with BUSY is asked to wait before it tries again. */
const BUSY_RETRY_MS = 100;

/** What every session of one server shares. */
export interface SessionDeps {
  handlers: Handlers;
  metrics: Metrics;
  drain: Drain;
  limits: SessionLimits;
  ledger: RequestLedger;
  /** What a progress push is about, so a narrowed session (events.follow) gets its volumes' progress. */
  progressVolume?: ProgressVolume;
}

/** One WebSocket connection: decode, check hello came first, validate, dispatch, reply; events are pushed. */
export class Session {
  private greeted = false;
  private inFlight = 0;
  private ended = false;
  private readonly handlers: Handlers;
  private readonly metrics: Metrics;
  private readonly drain: Drain;
  private readonly limits: SessionLimits;
  private readonly ledger: RequestLedger;
  /** Which pushes this session wants (events.follow). */
  private readonly follow: Follow;

  constructor(
    private readonly sink: FrameSink,
    deps: SessionDeps,
    /** What the connection's credential allows: a `read` session changes nothing. */
    private readonly role: Role,
    /** Carries the session's id (and peer) on every line it logs. */
    private readonly log: Logger = rootLog,
  ) {
    ({ handlers: this.handlers, metrics: this.metrics, drain: this.drain, limits: this.limits, ledger: this.ledger } = deps);
    this.follow = new Follow(deps.progressVolume);
  }

  push(event: EventFrame): void {
    if (this.greeted && this.follow.wants(event)) this.send(event);
  }

  /** Every frame to the client leaves here: a read session's lose their secrets (SECRET_CONNECTION_FIELDS). */
  private send(frame: ServerFrame): void {
    if (this.ended) return;
    this.sink.send(encode(this.role === 'read' ? withoutSecrets(frame) : frame));
    if (this.sink.unsentBytes() > this.limits.unsentBytes) {
      this.ended = true;
      this.sink.terminate(`more than ${this.limits.unsentBytes} bytes unread`);
    }
  }

  /**
   * `null` stands for a text frame: the protocol is binary msgpack only. An op answered at once (a read
   * the index serves, hello) is replied to in this very turn and nothing is returned: no promise is made
   * for it, nothing is in flight for a stop to wait for (issue 20: promises are dear while async hooks
   * run). Otherwise the returned promise settles once the reply is sent.
   */
  receive(bytes: Uint8Array | null): Promise<void> | undefined {
    const request: Incoming = { started: performance.now(), cost: newCost(), id: null, op: 'invalid', counted: false, requestId: undefined, args: undefined };
    let answer: unknown;
    try {
      answer = this.dispatch(bytes, request);
    } catch (err) {
      this.fail(request, err);
      return undefined;
    }
    if (!(answer instanceof Promise)) {
      this.answer(request, answer);
      return undefined;
    }
    return this.drain.track(answer).then(
      (result) => this.answer(request, result),
      (err: unknown) => this.fail(request, err),
    );
  }

  /** Decodes, checks and starts one request: its result, or the promise of it. Throws what the client is told. */
  private dispatch(bytes: Uint8Array | null, request: Incoming): unknown {
    const { started, cost } = request;
    if (bytes === null) throw new ProtocolError('frames must be binary msgpack, not text');
    const decoded = decode(bytes);
    request.id = requestIdOf(decoded);
    const frame = parseRequestFrame(decoded);
    if (!isOpName(frame.op)) throw new ProtocolError(`unknown op ${JSON.stringify(frame.op)}`, { op: frame.op });
    const op = frame.op;
    request.op = op;
    if (!this.greeted && op !== 'hello') throw new ProtocolError('the first request must be hello');
    const requestId = frame.requestId;
    request.requestId = requestId;
    request.args = frame.args;
    if (this.role === 'read' && !READ_OPS.has(op)) {
      this.metrics.refused('read_only');
      this.log.warn({ op }, `refused ${op}: the credential is read-only`);
      throw new UnauthorizedError(`a read-only credential cannot ${op}`, { op });
    }
    const validating = performance.now();
    cost?.add('rpcIn', started);
    const checked = validateArgs(op, frame.args);
    cost?.add('validate', validating);
    if (!checked.ok) throw new InvalidArgumentError(checked.message, { op, issues: checked.issues });
    const handler = this.handlers[op] as (args: unknown, call: CallContext) => unknown;
    if (op === 'hello') {
      // Answered before this frame's turn ends, so a request the client pipelined behind it is accepted.
      const result = handler(checked.args, { newId: '' });
      this.greeted = true;
      return result;
    }
    if (this.inFlight >= this.limits.requestsInFlight) {
      throw new BusyError(`${this.inFlight} requests already in flight on this connection`, {
        retryAfterMs: BUSY_RETRY_MS,
        limit: this.limits.requestsInFlight,
      });
    }
    this.inFlight++;
    request.counted = true;
    const creating = CREATING_OPS.has(op);
    const follow = this.follow;
    const work = (call: CallContext): unknown => {
      if (creating) follow.making(call.newId);
      // Built field by field: spreads here cost more than the rest of a volume.get's own work (issue 20).
      const context: RequestContext = { op, queued: false };
      if (requestId !== undefined) context.requestId = requestId;
      if (call.signal) context.signal = call.signal;
      if (call.mark) context.mark = call.mark;
      if (cost) context.cost = cost;
      const handled: CallContext = { newId: call.newId, follow };
      if (call.signal) handled.signal = call.signal;
      if (call.mark) handled.mark = call.mark;
      return inRequest(context, () => handler(checked.args, handled));
    };
    if (requestId !== undefined && MUTATING_OPS.has(op)) return this.ledger.run(requestId, op, async (call) => work(call));
    // Only a creating op names what it makes; a UUID for every read would be work for nothing.
    return work({ newId: creating ? randomUUID() : '' });
  }

  private answer(request: Incoming, result: unknown): void {
    this.follow.sent(result);
    this.reply(request, { id: request.id as number, ok: true, result });
  }

  private fail(request: Incoming, err: unknown): void {
    // A non-Kindling error is a bug of ours: keep its stack in the log, not on the wire.
    if (!(err instanceof KindlingError)) request.bug = err;
    this.reply(request, { id: request.id, ok: false, error: toErrorInfo(err) });
  }

  private reply(request: Incoming, reply: ReplyFrame): void {
    const { started, cost, op } = request;
    if (request.counted) this.inFlight--;
    const sending = performance.now();
    // The reply first: metrics and the log line are nothing the client waits for.
    this.send(reply);
    if (cost) cost.add('rpcOut', sending);
    const seconds = (sending - started) / 1000;
    this.metrics.observe(op, reply.ok ? 'ok' : reply.error.code, seconds);
    logRequest(this.log, { op, requestId: request.requestId, args: request.args, reply, seconds, bug: request.bug });
    if (cost) writeCost(op, performance.now() - started, cost);
  }
}

/** One request as the session follows it from its frame to its reply. */
interface Incoming {
  started: number;
  cost: Cost | undefined;
  /** The frame's id once read: even a malformed frame's error names it when it has one. */
  id: number | null;
  op: OpName | 'invalid';
  /** Whether it holds one of the session's in-flight places. */
  counted: boolean;
  requestId: string | undefined;
  args: unknown;
  /** A bug of ours (not a Kindling error), for the log. */
  bug?: unknown;
}
