import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import {
  PROTOCOL_VERSION,
  InvalidArgumentError,
  ProtocolError,
  TimeoutError,
  UnavailableError,
  decode,
  encode,
  errorFromInfo,
  isObject,
  validateArgs,
  type ErrorInfo,
  type EventFrame,
  type HelloResult,
  type KindlingError,
  type OpArgs,
  type OpName,
  type OpResult,
} from '@kindling/protocol';
import { Deadline, Deadlines } from './deadlines.js';
import { LateReplies, deliver, requestIdFor, type Frame, type Link, type Outcome } from './ledger.js';
import { rpcUrl, tokenFromEnv, type ConnectOptions, type ReconnectOptions, type RequestOptions, type TlsOptions } from './options.js';
import { dialFailed, isFinal, upgradeRefused } from './refusals.js';

export type TransportEvents = {
  /** An agent push. */
  event: [frame: EventFrame];
  /** The link came back after a drop; the agent said hello again. */
  up: [hello: HelloResult];
  /** The link dropped; calls in flight wait for the redial and are sent again. */
  down: [error: UnavailableError];
  /** The reply to a creating call that had timed out: the work got done, and what it made can be adopted. */
  late: [reply: { op: OpName; requestId: string; result: unknown }];
};

interface Pending {
  settle(outcome: Outcome): void;
}

/** `idle` before the first dial, `down` between a drop and a successful redial, `closed` for good. */
type State = 'idle' | 'open' | 'down' | 'closed';

/**
 * msgpack would carry `undefined` as an extension type; leaving the key out means the same to the agent.
 * Copied only when there is a key to leave out: most args have none.
 */
function withoutUndefined(args: unknown): unknown {
  if (!isObject(args)) return args;
  for (const key in args) {
    if (args[key] === undefined) return Object.fromEntries(Object.entries(args).filter(([, value]) => value !== undefined));
  }
  return args;
}

/**
 * One WebSocket to one agent: frames matched to replies, per-call deadlines, pushes re-emitted, and a
 * background redial after a drop. Calls outlive a drop or a BUSY refusal by being sent again: how, and
 * with which request id, is the ledger's (ledger.ts). Knows frames, not resources.
 */
export class Transport extends EventEmitter<TransportEvents> {
  /** The `/rpc` endpoint actually dialled. */
  readonly endpoint: string;
  private readonly token: string | undefined;
  private readonly tls: TlsOptions;
  private readonly deadlines: Deadlines;
  private readonly keepaliveMs: number;
  private readonly busyRetries: number;
  private readonly reconnect: Required<ReconnectOptions> | null;
  private socket: WebSocket | null = null;
  private state: State = 'idle';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Frames that wait for a later turn (receive): a push, and whatever came after it. */
  private readonly deferred: Record<string, unknown>[] = [];
  private readonly late = new LateReplies();
  private retryTimer: NodeJS.Timeout | null = null;
  private dialing: Promise<HelloResult> | null = null;
  private hello: HelloResult | null = null;
  /** Why the last redial failed: a final refusal (isFinal) ends every wait at once. */
  private redialError: KindlingError | null = null;
  /** The calls waiting for the next redial, each its own settler: waiting adds no listener to this emitter. */
  private readonly waiting = new Set<(err?: KindlingError) => void>();
  /** The ledger's view of this link. */
  private readonly link: Link = {
    whenOpen: (deadline) => (this.state === 'open' ? null : this.whenOpen(deadline)),
    exchange: (frame, deadline) => this.exchange(this.socket, frame, deadline),
    lost: () =>
      this.reconnect && this.state !== 'closed'
        ? null
        : new UnavailableError(this.state === 'closed' ? 'the client closed the connection' : `the connection to the agent at ${this.endpoint} closed`),
  };

  constructor(url: string, options: ConnectOptions = {}) {
    super();
    this.endpoint = rpcUrl(url);
    this.token = options.token ?? tokenFromEnv();
    this.tls = options.tls ?? {};
    this.keepaliveMs = options.keepaliveMs ?? 15_000;
    this.deadlines = new Deadlines(options, this.keepaliveMs);
    this.busyRetries = options.busyRetries ?? 3;
    const reconnect = options.reconnect ?? true;
    this.reconnect =
      reconnect === false
        ? null
        : { initialDelayMs: 100, maxDelayMs: 5000, waitMs: 2000, ...(reconnect === true ? {} : reconnect) };
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  /**
   * Connects, or waits for the background redial when one is under way. A dial from here fails fast
   * (no retries), so a wrong URL or token is reported to the caller.
   */
  async open(): Promise<HelloResult> {
    if (this.state === 'closed') throw new UnavailableError('this connection was closed');
    if (this.state === 'down' && this.reconnect) await this.whenOpen();
    if (this.state === 'open' && this.hello) return this.hello;
    this.dialing ??= this.dial().finally(() => (this.dialing = null));
    return this.dialing;
  }

  /**
   * Validates, sends and resolves with the reply's result, within the op's deadline (Deadlines). A
   * mutating call carries a requestId for its whole life (ledger.ts): a TIMEOUT or UNAVAILABLE rejection
   * names it in `details.requestId`, so the caller can ask again for the outcome.
   */
  async request<O extends OpName>(op: O, args: OpArgs<O>, options: RequestOptions = {}): Promise<OpResult<O>> {
    const checked = validateArgs(op, args);
    if (!checked.ok) throw new InvalidArgumentError(checked.message, { op, issues: checked.issues });
    const timeoutMs = options.timeoutMs ?? this.deadlines.of(op);
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new InvalidArgumentError('timeoutMs must be a non-negative number of ms', { timeoutMs });
    const requestId = requestIdFor(op, options.requestId);
    const frame: Frame = { op, args: withoutUndefined(checked.args), ...(requestId === undefined ? {} : { requestId }) };
    const ids = requestId === undefined ? { op } : { op, requestId };
    const call = new Deadline(timeoutMs, () => new TimeoutError(`${op} got no reply within ${timeoutMs} ms`, { ...ids, timeoutMs }));
    try {
      return (await deliver(this.link, frame, call, this.busyRetries)) as OpResult<O>;
    } finally {
      call.clear();
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.wake(new UnavailableError('the client closed the connection'));
    this.losePending();
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.close(1000);
      // An agent that never answers the close handshake must not hold the caller.
      setTimeout(() => socket.terminate(), 1000).unref();
    });
  }

  private dial(): Promise<HelloResult> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = this.token ? { Authorization: `Bearer ${this.token}` } : {};
      const connectMs = this.deadlines.connectMs;
      const ws = new WebSocket(this.endpoint, {
        headers,
        ...this.tls,
        ...(connectMs > 0 ? { handshakeTimeout: connectMs } : {}),
        // No compression: frames are small and latency is what counts.
        perMessageDeflate: false,
        // Frames are read as they arrive, not one per turn (a turn per frame cost the wire a third of its
        // time, issue 20); receive() keeps what one per turn guaranteed.
        allowSynchronousEvents: true,
      });
      this.socket = ws;
      let failure: KindlingError | Promise<KindlingError> | null = null;

      ws.on('unexpected-response', (_req, res) => {
        failure = upgradeRefused(this.endpoint, res.statusCode ?? 0, Boolean(this.token));
        res.resume();
        ws.terminate();
      });
      ws.on('error', (err) => {
        failure ??= dialFailed(this.endpoint, err);
      });
      ws.on('message', (data) => this.receive(data as Buffer)); // binaryType is the default 'nodebuffer'
      const stopKeepalive = this.keepalive(ws);
      ws.on('open', () => {
        const limit = new Deadline(connectMs, () => new TimeoutError(`hello got no reply within ${connectMs} ms`, { op: 'hello', timeoutMs: connectMs }));
        const frame: Frame = { op: 'hello', args: { protocolVersion: PROTOCOL_VERSION } };
        this.exchange(ws, frame, limit)
          .then((outcome) => {
            if (outcome.ok === 'lost') return; // the close handler rejects
            if (!outcome.ok) throw outcome.error;
            if (this.state === 'closed') return;
            this.state = 'open';
            this.hello = outcome.result as HelloResult;
            this.redialError = null;
            resolve(this.hello);
          })
          .catch((err: KindlingError) => {
            failure = err;
            ws.terminate();
          })
          .finally(() => limit.clear());
      });
      ws.on('close', () => {
        stopKeepalive();
        const wasOpen = this.state === 'open' && this.socket === ws;
        if (this.socket === ws) this.socket = null;
        const lost = new UnavailableError(`the connection to the agent at ${this.endpoint} closed`);
        if (wasOpen) this.state = 'down';
        this.losePending();
        if (!wasOpen) {
          if (this.state === 'closed') reject(new UnavailableError('the client closed the connection'));
          else void Promise.resolve(failure ?? lost).then(reject);
          return;
        }
        this.emit('down', lost);
        this.scheduleRedial(this.reconnect?.initialDelayMs ?? 0);
      });
    });
  }

  /** Pings on an interval and drops a link whose last ping went unanswered; returns the stopper. */
  private keepalive(ws: WebSocket): () => void {
    if (this.keepaliveMs <= 0) return () => undefined;
    let answered = true;
    ws.on('pong', () => (answered = true));
    const timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (!answered) return ws.terminate();
      answered = false;
      ws.ping();
    }, this.keepaliveMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private scheduleRedial(delayMs: number): void {
    if (!this.reconnect || this.state !== 'down') return;
    const { maxDelayMs } = this.reconnect;
    // Jitter so that many clients of one restarted agent do not redial in lockstep.
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = null;
        this.dial().then(
          (hello) => {
            this.wake();
            this.emit('up', hello);
          },
          (err: KindlingError) => {
            this.redialError = err;
            if (isFinal(err)) this.wake(err);
            this.scheduleRedial(Math.min(delayMs * 2, maxDelayMs));
          },
        );
      },
      delayMs * (0.5 + Math.random() / 2),
    );
    // A dead agent alone must not keep the process alive; a waiting call holds its own timer.
    this.retryTimer.unref();
  }

  /** Ends the calls' wait for the link: it is up (no error), or will not come up for them (`err`). */
  private wake(err?: KindlingError): void {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const done of waiting) done(err);
  }

  /** Resolves once the link is open: at once, or after a redial within `waitMs`; rejects when the deadline passes first. */
  private async whenOpen(deadline?: Deadline): Promise<void> {
    if (deadline?.reason) throw deadline.reason;
    if (this.state === 'open') return;
    const reconnect = this.reconnect;
    if (this.state !== 'down' || !reconnect) {
      throw new UnavailableError(
        this.state === 'idle'
          ? 'not connected to the agent yet'
          : this.state === 'closed'
            ? 'the client closed the connection'
            : `not connected to the agent at ${this.endpoint}`,
      );
    }
    const last = this.redialError;
    if (isFinal(last)) throw last;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: KindlingError): void => {
        clearTimeout(timer);
        this.waiting.delete(done);
        deadline?.unwatch();
        if (err) reject(err);
        else resolve();
      };
      const unreachable = (): KindlingError =>
        new UnavailableError(`the agent at ${this.endpoint} is unreachable`, {
          waitedMs: reconnect.waitMs,
          ...(this.redialError ? { lastError: this.redialError.message } : {}),
        });
      const timer = setTimeout(() => done(unreachable()), reconnect.waitMs);
      deadline?.watch(done);
      this.waiting.add(done);
    });
  }

  /**
   * One send of `frame` and its reply. When the deadline passes first, the reply is no longer awaited and
   * this rejects with the deadline's reason; a creating call's reply is still watched for (`late`).
   */
  private exchange(ws: WebSocket | null, frame: Frame, deadline: Deadline): Promise<Outcome> {
    if (!ws) return Promise.resolve({ ok: 'lost' });
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      deadline.watch((reason) => {
        this.pending.delete(id);
        this.late.abandoned(id, frame);
        reject(reason);
      });
      this.pending.set(id, {
        settle: (outcome) => {
          deadline.unwatch();
          resolve(outcome);
        },
      });
      ws.send(encode({ id, ...frame }), (err) => {
        // A send that failed means the socket is going: its close settles the call as lost.
        if (err) ws.terminate();
      });
    });
  }

  /**
   * A reply is handled at once; a push waits for a later turn, and so does any frame behind one (frames
   * are handled in the order they came, one per turn once deferred). So what a caller does on a reply (in
   * microtasks) happens before the pushes that followed it are handled: a fleet counts its answered create
   * before the capacity push that includes it.
   */
  private receive(data: Buffer): void {
    let frame: unknown;
    try {
      frame = decode(data);
    } catch {
      // Nothing ties an undecodable frame to a caller; the callers' own deadlines report the loss.
      return;
    }
    if (!isObject(frame)) return;
    if (this.deferred.length === 0 && !('event' in frame)) return this.handle(frame);
    if (this.deferred.push(frame) === 1) setImmediate(() => this.handleDeferred());
  }

  private handleDeferred(): void {
    const frame = this.deferred.shift();
    if (frame) this.handle(frame);
    if (this.deferred.length > 0) setImmediate(() => this.handleDeferred());
  }

  private handle(frame: Record<string, unknown>): void {
    if ('event' in frame) {
      this.emit('event', frame as EventFrame);
      return;
    }
    if (typeof frame.id !== 'number') return; // an error about a frame the agent could not read: no caller to tell
    const outcome: Outcome =
      frame.ok === true
        ? { ok: true, result: frame.result }
        : frame.ok === false && isObject(frame.error)
          ? { ok: false, error: errorFromInfo(frame.error as unknown as ErrorInfo) }
          : { ok: false, error: new ProtocolError(`malformed reply to request ${frame.id}`) };
    const entry = this.pending.get(frame.id);
    if (entry) {
      this.pending.delete(frame.id);
      entry.settle(outcome);
      return;
    }
    const late = this.late.take(frame.id, outcome);
    if (late) this.emit('late', late);
  }

  /** The link is gone: no reply will come for what is pending (each call decides whether to send again). */
  private losePending(): void {
    this.late.clear();
    const entries = [...this.pending.values()];
    this.pending.clear();
    for (const entry of entries) entry.settle({ ok: 'lost' });
  }
}
