import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import {
  PROTOCOL_VERSION,
  InvalidArgumentError,
  ProtocolError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  decode,
  encode,
  errorFromInfo,
  validateArgs,
  type ErrorInfo,
  type EventFrame,
  type HelloResult,
  type KindlingError,
  type OpArgs,
  type OpName,
  type OpResult,
} from '@kindling/protocol';

export interface ReconnectOptions {
  /** Delay before the first redial after a drop; doubles per failed attempt. Default 100. */
  initialDelayMs?: number;
  /** Ceiling of the redial delay. Default 5000. */
  maxDelayMs?: number;
  /** How long a call made while disconnected waits for the link to come back. Default 2000. */
  waitMs?: number;
}

export interface ConnectOptions {
  /** Sent as `Authorization: Bearer TOKEN` on the upgrade request. */
  token?: string;
  /** Per request. Default 120000: data copies on real storage take a while. The upgrade itself waits at most 10 s of it. */
  timeoutMs?: number;
  /** Redial in the background after the socket drops. Default on; `false` makes calls fail at once while down. */
  reconnect?: boolean | ReconnectOptions;
  /**
   * A ping this often; a link that has not answered the previous one is dropped (and redialled), so a
   * silently dead agent or network is noticed without waiting for a call to time out. Default 15000; 0: off.
   */
  keepaliveMs?: number;
}

export type TransportEvents = {
  /** An agent push. */
  event: [frame: EventFrame];
  /** The link came back after a drop; the agent said hello again. */
  up: [hello: HelloResult];
  /** The link dropped; every call in flight was rejected with this error. */
  down: [error: UnavailableError];
  closed: [];
};

interface Pending {
  resolve(result: unknown): void;
  reject(error: KindlingError): void;
  timer: NodeJS.Timeout;
}

/** `idle` before the first dial, `down` between a drop and a successful redial, `closed` for good. */
type State = 'idle' | 'open' | 'down' | 'closed';

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

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** msgpack would carry `undefined` as an extension type; leaving the key out means the same to the agent. */
function withoutUndefined(args: unknown): unknown {
  if (!isObject(args)) return args;
  return Object.fromEntries(Object.entries(args).filter(([, value]) => value !== undefined));
}

/**
 * One WebSocket to one agent: request ids matched to replies, per-request timeouts, pushes re-emitted,
 * and a background redial after a drop. Knows frames, not resources.
 */
export class Transport extends EventEmitter<TransportEvents> {
  /** The `/rpc` endpoint actually dialled. */
  readonly endpoint: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly keepaliveMs: number;
  private readonly reconnect: Required<ReconnectOptions> | null;
  private socket: WebSocket | null = null;
  private state: State = 'idle';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private retryTimer: NodeJS.Timeout | null = null;
  private dialing: Promise<HelloResult> | null = null;
  private hello: HelloResult | null = null;
  /** Why the last redial failed: a refused token is worth telling callers as such. */
  private redialError: KindlingError | null = null;

  constructor(url: string, options: ConnectOptions = {}) {
    super();
    this.endpoint = rpcUrl(url);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.keepaliveMs = options.keepaliveMs ?? 15_000;
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

  /** Validates, waits briefly if the link is being redialled, sends, and resolves with the reply's result. */
  async request<O extends OpName>(op: O, args: OpArgs<O>): Promise<OpResult<O>> {
    const checked = validateArgs(op, args);
    if (!checked.ok) throw new InvalidArgumentError(checked.message, { op, issues: checked.issues });
    await this.whenOpen();
    return this.send(this.socket, op, checked.args);
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.emit('closed');
    this.failPending(new UnavailableError('the client closed the connection'));
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
      // No compression: frames are small and latency is what counts.
      const ws = new WebSocket(this.endpoint, { headers, handshakeTimeout: Math.min(this.timeoutMs, 10_000), perMessageDeflate: false });
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
        this.send(ws, 'hello', { protocolVersion: PROTOCOL_VERSION }).then(
          (hello) => {
            if (this.state === 'closed') return;
            this.state = 'open';
            this.hello = hello;
            this.redialError = null;
            resolve(hello);
          },
          (err: KindlingError) => {
            failure = err;
            ws.terminate();
          },
        );
      });
      ws.on('close', () => {
        stopKeepalive();
        const wasOpen = this.state === 'open' && this.socket === ws;
        if (this.socket === ws) this.socket = null;
        const lost = new UnavailableError(`the connection to the agent at ${this.endpoint} closed`);
        this.failPending(lost);
        if (!wasOpen) {
          reject(this.state === 'closed' ? new UnavailableError('the client closed the connection') : (failure ?? lost));
          return;
        }
        this.state = 'down';
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

  private async whenOpen(): Promise<void> {
    if (this.state === 'open') return;
    const reconnect = this.reconnect;
    if (this.state !== 'down' || !reconnect) {
      throw new UnavailableError(
        this.state === 'idle' ? 'not connected to the agent yet' : `not connected to the agent at ${this.endpoint}`,
      );
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: KindlingError): void => {
        clearTimeout(timer);
        this.off('up', onUp);
        this.off('closed', onClosed);
        if (err) reject(err);
        else resolve();
      };
      const onUp = (): void => done();
      const onClosed = (): void => done(new UnavailableError('the client closed the connection'));
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
    });
  }

  private send<O extends OpName>(ws: WebSocket | null, op: O, args: unknown): Promise<OpResult<O>> {
    if (!ws) return Promise.reject(new UnavailableError(`not connected to the agent at ${this.endpoint}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(`${op} got no reply within ${this.timeoutMs} ms`, { op }));
      }, this.timeoutMs);
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject, timer });
      ws.send(encode({ id, op, args: withoutUndefined(args) }), (err) => {
        if (err) this.settle(id, new UnavailableError(`could not send ${op}: ${err.message}`));
      });
    });
  }

  private receive(data: Buffer): void {
    let frame: unknown;
    try {
      frame = decode(data);
    } catch {
      // Nothing ties an undecodable frame to a caller; the callers' own timeouts report the loss.
      return;
    }
    if (!isObject(frame)) return;
    if ('event' in frame) {
      this.emit('event', frame as EventFrame);
      return;
    }
    if (typeof frame.id !== 'number') return; // an error about a frame the agent could not read: no caller to tell
    if (frame.ok === true) this.settle(frame.id, null, frame.result);
    else if (frame.ok === false && isObject(frame.error)) this.settle(frame.id, errorFromInfo(frame.error as unknown as ErrorInfo));
    else this.settle(frame.id, new ProtocolError(`malformed reply to request ${frame.id}`));
  }

  /** Late replies (after a timeout) find no entry and are dropped. */
  private settle(id: number, error: KindlingError | null, result?: unknown): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(result);
  }

  private failPending(error: UnavailableError): void {
    for (const id of [...this.pending.keys()]) this.settle(id, error);
  }
}
