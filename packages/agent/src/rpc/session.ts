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
import { newCost, writeCost } from '../cost.js';
import { log as rootLog, type Logger } from '../log.js';
import { inRequest } from '../request-context.js';
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

  /** `null` stands for a text frame: the protocol is binary msgpack only. */
  async receive(bytes: Uint8Array | null): Promise<void> {
    const started = performance.now();
    let id: number | null = null;
    let op: OpName | 'invalid' = 'invalid';
    let reply: ReplyFrame;
    let counted = false;
    let requestId: string | undefined;
    let args: unknown;
    let bug: unknown;
    const cost = newCost();
    try {
      if (bytes === null) throw new ProtocolError('frames must be binary msgpack, not text');
      const decoded = decode(bytes);
      id = requestIdOf(decoded);
      const frame = parseRequestFrame(decoded);
      if (!isOpName(frame.op)) throw new ProtocolError(`unknown op ${JSON.stringify(frame.op)}`, { op: frame.op });
      op = frame.op;
      if (!this.greeted && op !== 'hello') throw new ProtocolError('the first request must be hello');
      requestId = frame.requestId;
      args = frame.args;
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
        const result = handler(checked.args, { newId: randomUUID() });
        this.greeted = true;
        reply = { id: frame.id, ok: true, result };
      } else {
        if (this.inFlight >= this.limits.requestsInFlight) {
          throw new BusyError(`${this.inFlight} requests already in flight on this connection`, {
            retryAfterMs: BUSY_RETRY_MS,
            limit: this.limits.requestsInFlight,
          });
        }
        this.inFlight++;
        counted = true;
        const request = { op: frame.op, ...(requestId ? { requestId } : {}) };
        const creating = CREATING_OPS.has(op);
        const work = (call: CallContext): unknown => {
          if (creating) this.follow.making(call.newId);
          return inRequest(
            { ...request, ...(call.signal ? { signal: call.signal } : {}), ...(call.mark ? { mark: call.mark } : {}), ...(cost ? { cost } : {}), queued: false },
            () => handler(checked.args, { ...call, follow: this.follow }),
          );
        };
        const answer =
          requestId !== undefined && MUTATING_OPS.has(op)
            ? this.ledger.run(requestId, op, async (call) => work(call))
            : work({ newId: randomUUID() });
        // A read the index answers at once (volume.get) is replied to in this turn: no promise to track,
        // nothing in flight for a stop to wait for (issue 20: promises are dear while async hooks run).
        const result = answer instanceof Promise ? await this.drain.track(answer) : answer;
        this.follow.sent(result);
        reply = { id: frame.id, ok: true, result };
      }
    } catch (err) {
      // A non-Kindling error is a bug of ours: keep its stack in the log, not on the wire.
      if (!(err instanceof KindlingError)) bug = err;
      reply = { id, ok: false, error: toErrorInfo(err) };
    }
    if (counted) this.inFlight--;
    const sending = performance.now();
    const seconds = (sending - started) / 1000;
    // The reply first: metrics and the log line are nothing the client waits for.
    this.send(reply);
    if (cost) cost.add('rpcOut', sending);
    this.metrics.observe(op, reply.ok ? 'ok' : reply.error.code, seconds);
    logRequest(this.log, { op, requestId, args, reply, seconds, bug });
    if (cost) writeCost(op, performance.now() - started, cost);
  }
}
