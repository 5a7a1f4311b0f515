import {
  InvalidArgumentError,
  KindlingError,
  ProtocolError,
  decode,
  encode,
  isOpName,
  parseRequestFrame,
  requestIdOf,
  toErrorInfo,
  validateArgs,
  type EventFrame,
  type OpName,
  type ReplyFrame,
} from '@kindling/protocol';
import type { Handlers } from './dispatch.js';
import type { Drain } from './drain.js';
import type { Metrics } from './metrics.js';

export interface FrameSink {
  send(bytes: Uint8Array): void;
}

/** One WebSocket connection: decode, check hello came first, validate, dispatch, reply; events are pushed. */
export class Session {
  private greeted = false;

  constructor(
    private readonly sink: FrameSink,
    private readonly handlers: Handlers,
    private readonly metrics: Metrics,
    private readonly drain: Drain,
  ) {}

  push(event: EventFrame): void {
    if (this.greeted) this.sink.send(encode(event));
  }

  /** `null` stands for a text frame: the protocol is binary msgpack only. */
  async receive(bytes: Uint8Array | null): Promise<void> {
    const started = performance.now();
    let id: number | null = null;
    let op: OpName | 'invalid' = 'invalid';
    let reply: ReplyFrame;
    try {
      if (bytes === null) throw new ProtocolError('frames must be binary msgpack, not text');
      const decoded = decode(bytes);
      id = requestIdOf(decoded);
      const frame = parseRequestFrame(decoded);
      if (!isOpName(frame.op)) throw new ProtocolError(`unknown op ${JSON.stringify(frame.op)}`, { op: frame.op });
      op = frame.op;
      if (!this.greeted && op !== 'hello') throw new ProtocolError('the first request must be hello');
      const checked = validateArgs(op, frame.args);
      if (!checked.ok) throw new InvalidArgumentError(checked.message, { op, issues: checked.issues });
      const handler = this.handlers[op] as (args: unknown) => unknown;
      const result = await this.drain.track(Promise.resolve(handler(checked.args)));
      if (op === 'hello') this.greeted = true;
      reply = { id: frame.id, ok: true, result };
    } catch (err) {
      // A non-Kindling error is a bug of ours: keep its stack in the log, not on the wire.
      if (!(err instanceof KindlingError)) console.error(`kindling-agent: ${op} failed:`, err);
      reply = { id, ok: false, error: toErrorInfo(err) };
    }
    this.metrics.observe(op, reply.ok ? 'ok' : reply.error.code, (performance.now() - started) / 1000);
    this.sink.send(encode(reply));
  }
}
