import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import {
  CREATING_OPS,
  MUTATING_OPS,
  PROTOCOL_VERSION,
  InvalidArgumentError,
  ProtocolError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  decode,
  encode,
  errorFromInfo,
  isObject,
  messageOf,
  parseRequestFrame,
  validateArgs,
  type ErrorInfo,
  type EventFrame,
  type HelloResult,
  type KindlingError,
  type OpArgs,
  type OpName,
  type OpResult,
  type RequestFrame,
} from '@kindling/protocol';
import { LONG_OPS, busyDelay, deadline, pause } from './deadlines.js';

export interface ReconnectOptions {
  /** Delay before the first redial after a drop; doubles per failed attempt. Default 100. */
  initialDelayMs?: number;
  /** Ceiling of the redial delay. Default 5000. */
  maxDelayMs?: number;
  /**
   * How long a call waits for the link to come back: one made while disconnected, and one in flight when
   * the link dropped (sent again, with the same requestId, once the agent is back). Default 2000.
   */
  waitMs?: number;
}

/** Certificates for `wss://` with a private CA or mutual TLS (PEM text or bytes). */
export interface TlsOptions {
  /** CA bundle the agent's certificate must chain to. */
  ca?: string | Buffer;
  /** This client's certificate and key, for an agent that asks for one (`tls.clientCa`). */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface ConnectOptions {
  /**
   * Sent as `Authorization: Bearer TOKEN` on the upgrade request. Default: `KINDLING_TOKEN`, else the
   * contents of the file `KINDLING_TOKEN_FILE` names.
   */
  token?: string;
  tls?: TlsOptions;
  /** Deadline of each short request (reads, attach, snapshot and volume create, ...). Default 120000. The upgrade waits at most 10 s of it. */
  timeoutMs?: number;
  /**
   * Deadline of the long operations, which copy or zero data (clone, volume from snapshot, revert, extend,
   * deletes). Default none while keepalive watches the link, as they take as long as the data is big;
   * `timeoutMs` when keepalive is off. 0: none.
   */
  longTimeoutMs?: number;
  /** Redial in the background after the socket drops. Default on; `false` makes calls fail at once while down. */
  reconnect?: boolean | ReconnectOptions;
  /**
   * A ping this often; a link that has not answered the previous one is dropped (and redialled), so a
   * silently dead agent or network is noticed without waiting for a call to time out. Default 15000; 0: off.
   */
  keepaliveMs?: number;
  /** How often a call refused with BUSY is sent again, after the agent's `retryAfterMs`, before the BusyError reaches the caller. Default 3. */
  busyRetries?: number;
}

/** Per call. */
export interface RequestOptions {
  /** The request id to send; default a fresh UUID for a mutating op (MUTATING_OPS), none for a read. */
  requestId?: string;
  /** This call's deadline; default by op (see ConnectOptions). 0: none. */
  timeoutMs?: number;
}

export type TransportEvents = {
  /** An agent push. */
  event: [frame: EventFrame];
  /** The link came back after a drop; the agent said hello again. */
  up: [hello: HelloResult];
  /** The link dropped; calls in flight wait for the redial and are sent again. */
  down: [error: UnavailableError];
  /** The reply to a creating call that had timed out: the work got done, and what it made can be adopted. */
  late: [reply: { op: OpName; requestId: string; result: unknown }];
  closed: [];
};

/** A request as sent, kept for the call's life so that a re-send is the very same request. */
/** A request frame before the socket it goes out on numbers it. */
type Frame = Omit<RequestFrame, 'id'>;

/** How one exchange ended: a reply, or the link went before one came. */
type Outcome = { ok: true; result: unknown } | { ok: false; error: KindlingError } | { ok: 'lost' };

interface Pending {
  settle(outcome: Outcome): void;
}

/** `idle` before the first dial, `down` between a drop and a successful redial, `closed` for good. */
type State = 'idle' | 'open' | 'down' | 'closed';

/** The token the environment gives: `KINDLING_TOKEN`, else the file `KINDLING_TOKEN_FILE` names. */
export function tokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.KINDLING_TOKEN) return env.KINDLING_TOKEN;
  const file = env.KINDLING_TOKEN_FILE;
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the token file KINDLING_TOKEN_FILE=${file}: ${messageOf(err)}`, { file });
  }
}

/** The agent's RPC endpoint for a user-given URL: `/rpc` is added when the URL has no path. */
export function rpcUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${url}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new InvalidArgumentError(`an agent URL is ws:// or wss://, not ${parsed.protocol}//`, { url });
  }
  if (parsed.pathname === '' || parsed.pathname === '/') parsed.pathname = '/rpc';
  return parsed.toString();
}

/** msgpack would carry `undefined` as an extension type; leaving the key out means the same to the agent. */
function withoutUndefined(args: unknown): unknown {
  if (!isObject(args)) return args;
  return Object.fromEntries(Object.entries(args).filter(([, value]) => value !== undefined));
}

/** The id a call goes out with: the caller's, else a fresh UUID for a mutating op (so a resend is answered from its outcome), else none. */
export function requestIdFor(op: OpName, given: string | undefined): string | undefined {
  return given ?? (MUTATING_OPS.has(op) ? randomUUID() : undefined);
}

/** A caller's own request id, checked by the agent's rule before anything is sent. */
function checkRequestId(op: OpName, requestId: string): void {
  try {
    parseRequestFrame({ id: 0, op, args: null, requestId });
  } catch (err) {
    throw new InvalidArgumentError(messageOf(err), { op, requestId });
  }
}

/**
 * One WebSocket to one agent: request ids matched to replies, per-call deadlines, pushes re-emitted, a
 * background redial after a drop, and calls that outlive a drop or a BUSY refusal by being sent again
 * (the same frame, the same requestId: the agent answers a retry with the first outcome). Knows
 * frames, not resources.
 */
export class Transport extends EventEmitter<TransportEvents> {
  /** The `/rpc` endpoint actually dialled. */
  readonly endpoint: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly longTimeoutMs: number;
  private readonly keepaliveMs: number;
  private readonly busyRetries: number;
  private readonly reconnect: Required<ReconnectOptions> | null;
  private socket: WebSocket | null = null;
  private state: State = 'idle';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Frames of creating calls that timed out, by frame id, whose reply is still worth adopting. */
  private readonly late = new Map<number, Frame>();
  private retryTimer: NodeJS.Timeout | null = null;
  private dialing: Promise<HelloResult> | null = null;
  private hello: HelloResult | null = null;
  /** Why the last redial failed: a refused token is worth telling callers as such. */
  private redialError: KindlingError | null = null;

  private readonly tls: TlsOptions;

  constructor(url: string, options: ConnectOptions = {}) {
    super();
    this.endpoint = rpcUrl(url);
    this.token = options.token ?? tokenFromEnv();
    this.tls = options.tls ?? {};
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.keepaliveMs = options.keepaliveMs ?? 15_000;
    // Without pings nothing notices a dead link, so long calls fall back to the short deadline.
    this.longTimeoutMs = options.longTimeoutMs ?? (this.keepaliveMs > 0 ? 0 : this.timeoutMs);
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
   * Validates, sends and resolves with the reply's result. A mutating call carries a requestId for its
   * whole life: sent again after a drop (once redialled, within `waitMs`) and after a BUSY refusal, it is
   * still one operation. A TIMEOUT or UNAVAILABLE rejection of a call with a requestId names it in
   * `details.requestId`, so the caller can ask again for the outcome.
   */
  async request<O extends OpName>(op: O, args: OpArgs<O>, options: RequestOptions = {}): Promise<OpResult<O>> {
    const checked = validateArgs(op, args);
    if (!checked.ok) throw new InvalidArgumentError(checked.message, { op, issues: checked.issues });
    const timeoutMs = options.timeoutMs ?? (LONG_OPS.has(op) ? this.longTimeoutMs : this.timeoutMs);
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new InvalidArgumentError('timeoutMs must be a non-negative number of ms', { timeoutMs });
    if (options.requestId !== undefined) checkRequestId(op, options.requestId);
    const requestId = requestIdFor(op, options.requestId);
    const frame: Frame = { op, args: withoutUndefined(checked.args), ...(requestId === undefined ? {} : { requestId }) };
    const ids = requestId === undefined ? { op } : { op, requestId };
    const call = deadline(timeoutMs, () => new TimeoutError(`${op} got no reply within ${timeoutMs} ms`, { ...ids, timeoutMs }));
    try {
      return (await this.attempts(frame, call.signal)) as OpResult<O>;
    } catch (err) {
      // The outcome is unknown: the id lets the caller ask for it.
      if (requestId !== undefined && err instanceof UnavailableError) throw new UnavailableError(err.message, { ...err.details, ...ids }, { cause: err });
      throw err;
    } finally {
      call.clear();
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.emit('closed');
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

  /** Sends `frame` until it gets a reply that is not BUSY (or BUSY too often), redialling after drops. */
  private async attempts(frame: Frame, signal: AbortSignal): Promise<unknown> {
    for (let busy = 0; ; ) {
      await this.whenOpen(signal);
      const outcome = await this.exchange(this.socket, frame, signal);
      if (outcome.ok === true) return outcome.result;
      if (outcome.ok === 'lost') {
        if (this.reconnect && this.state !== 'closed') continue;
        throw new UnavailableError(
          this.state === 'closed' ? 'the client closed the connection' : `the connection to the agent at ${this.endpoint} closed`,
        );
      }
      if (outcome.error.code !== 'BUSY' || busy >= this.busyRetries) throw outcome.error;
      busy++;
      await pause(busyDelay(outcome.error), signal);
    }
  }

  private dial(): Promise<HelloResult> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = this.token ? { Authorization: `Bearer ${this.token}` } : {};
      const ws = new WebSocket(this.endpoint, {
        headers,
        ...this.tls,
        handshakeTimeout: Math.min(this.timeoutMs, 10_000),
        // No compression: frames are small and latency is what counts.
        perMessageDeflate: false,
        // One frame per turn, as in browsers: what a caller does on a reply (in microtasks) happens before
        // the pushes that followed it are handled, so a fleet counts its answered create before the
        // capacity push that includes it.
        allowSynchronousEvents: false,
      });
      this.socket = ws;
      let failure: KindlingError | null = null;

      ws.on('unexpected-response', (_req, res) => {
        failure =
          res.statusCode === 401 || res.statusCode === 403
            ? new UnauthorizedError(`the agent at ${this.endpoint} refused the token`, { status: res.statusCode })
            : new UnavailableError(`the agent at ${this.endpoint} answered the upgrade with HTTP ${res.statusCode}`);
        res.resume();
        ws.terminate();
      });
      ws.on('error', (err) => {
        failure ??= new UnavailableError(`cannot reach the agent at ${this.endpoint}: ${err.message}`);
      });
      ws.on('message', (data) => this.receive(data as Buffer)); // binaryType is the default 'nodebuffer'
      const stopKeepalive = this.keepalive(ws);
      ws.on('open', () => {
        const limit = deadline(this.timeoutMs, () => new TimeoutError(`hello got no reply within ${this.timeoutMs} ms`, { op: 'hello' }));
        const frame: Frame = { op: 'hello', args: { protocolVersion: PROTOCOL_VERSION } };
        this.exchange(ws, frame, limit.signal)
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
          reject(this.state === 'closed' ? new UnavailableError('the client closed the connection') : (failure ?? lost));
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
          (hello) => this.emit('up', hello),
          (err: KindlingError) => {
            this.redialError = err;
            this.scheduleRedial(Math.min(delayMs * 2, maxDelayMs));
          },
        );
      },
      delayMs * (0.5 + Math.random() / 2),
    );
    // A dead agent alone must not keep the process alive; a waiting call holds its own timer.
    this.retryTimer.unref();
  }

  /** Resolves once the link is open: at once, or after a redial within `waitMs`; rejects when the signal aborts first. */
  private async whenOpen(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason as KindlingError;
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
    await new Promise<void>((resolve, reject) => {
      const done = (err?: KindlingError): void => {
        clearTimeout(timer);
        this.off('up', onUp);
        this.off('closed', onClosed);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onUp = (): void => done();
      const onClosed = (): void => done(new UnavailableError('the client closed the connection'));
      const onAbort = (): void => done(signal?.reason as KindlingError);
      const unreachable = (): KindlingError => {
        const last = this.redialError;
        if (last?.code === 'UNAUTHORIZED') return last;
        return new UnavailableError(`the agent at ${this.endpoint} is unreachable`, {
          waitedMs: reconnect.waitMs,
          ...(last ? { lastError: last.message } : {}),
        });
      };
      const timer = setTimeout(() => done(unreachable()), reconnect.waitMs);
      this.on('up', onUp);
      this.on('closed', onClosed);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * One send of `frame` and its reply. When the signal aborts first, the reply is no longer awaited and
   * this rejects with the signal's reason; a creating call's reply is still watched for (`late`).
   */
  private exchange(ws: WebSocket | null, frame: Frame, signal: AbortSignal): Promise<Outcome> {
    if (!ws) return Promise.resolve({ ok: 'lost' });
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.pending.delete(id);
        if (frame.requestId !== undefined && CREATING_OPS.has(frame.op)) this.late.set(id, frame);
        reject(signal.reason as KindlingError);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        settle: (outcome) => {
          signal.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
      });
      ws.send(encode({ id, ...frame }), (err) => {
        // A send that failed means the socket is going: its close settles the call as lost.
        if (err) ws.terminate();
      });
    });
  }

  private receive(data: Buffer): void {
    let frame: unknown;
    try {
      frame = decode(data);
    } catch {
      // Nothing ties an undecodable frame to a caller; the callers' own deadlines report the loss.
      return;
    }
    if (!isObject(frame)) return;
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
    const late = this.late.get(frame.id);
    if (!late?.requestId) return;
    this.late.delete(frame.id);
    if (outcome.ok === true) this.emit('late', { op: late.op, requestId: late.requestId, result: outcome.result });
  }

  /** The link is gone: no reply will come for what is pending (each call decides whether to send again). */
  private losePending(): void {
    this.late.clear();
    const entries = [...this.pending.values()];
    this.pending.clear();
    for (const entry of entries) entry.settle({ ok: 'lost' });
  }
}
