import { createHash, type Hash } from 'node:crypto';
import { ProtocolError } from '@kindling/protocol';

/**
 * The transfer stream (GET /transfer/<id>): records, each a 13-byte header (kind u8, offset u64, length
 * u32) and its payload. Data records carry the logical bytes at `offset` (never all zeros: zero and
 * hole ranges are not sent); the end record carries the sha256 over every data record's header and
 * payload in order, so the target checks that what it wrote is what the source read. A stream without
 * its end record was cut short.
 */

/** Largest data record: the source reads and sends in pieces of this size. */
export const CHUNK = 1024 * 1024;
const HEADER = 13;
const DATA = 1;
const END = 2;
const DIGEST_BYTES = 32;

export type StreamRecord = { kind: 'data'; offset: number; data: Buffer } | { kind: 'end'; digest: Buffer };

function header(kind: number, offset: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt8(kind, 0);
  h.writeBigUInt64BE(BigInt(offset), 1);
  h.writeUInt32BE(length, 9);
  return h;
}

/** The digest both sides compute over the data records. */
export class StreamDigest {
  readonly #hash: Hash = createHash('sha256');

  /** Adds a data record; returns its header, as sent. */
  add(offset: number, data: Buffer): Buffer {
    const h = header(DATA, offset, data.length);
    this.#hash.update(h);
    this.#hash.update(data);
    return h;
  }

  end(): Buffer {
    return this.#hash.digest();
  }
}

export const endRecord = (digest: Buffer): Buffer => Buffer.concat([header(END, 0, DIGEST_BYTES), digest]);

/**
 * CHUNK-sized buffers used again and again. A fresh 1 MiB buffer pays its page faults when first written,
 * which costs several times the copy into it (a copy ran at a fifth of its speed on fresh buffers).
 */
export class BufferPool {
  readonly #free: Buffer[] = [];

  constructor(private readonly keep: number) {}

  /** A buffer of `length` bytes (at most CHUNK), its content undefined. */
  take(length: number): Buffer {
    return (this.#free.pop() ?? Buffer.allocUnsafeSlow(CHUNK)).subarray(0, length);
  }

  /** Gives back a buffer `take` returned, once nothing reads it any more. */
  give(buffer: Buffer): void {
    // `take`'s buffers alone own a whole CHUNK-sized memory of their own (allocUnsafeSlow: never the shared pool).
    if (this.#free.length < this.keep && buffer.byteOffset === 0 && buffer.buffer.byteLength === CHUNK) this.#free.push(Buffer.from(buffer.buffer, 0, CHUNK));
  }
}

/**
 * The records of a stream, as they arrive; a malformed one is a PROTOCOL error. Each data record's payload
 * is copied once, from the chunks it came in, into a buffer of `pool`: the caller gives it back once written.
 */
export async function* readRecords(body: AsyncIterable<Uint8Array>, pool = new BufferPool(0)): AsyncGenerator<StreamRecord> {
  const head = Buffer.allocUnsafe(HEADER);
  let headHave = 0;
  let record: { kind: number; offset: number; payload: Buffer; have: number } | null = null;
  for await (const chunk of body) {
    for (let at = 0; at < chunk.byteLength; ) {
      if (!record) {
        const n = Math.min(HEADER - headHave, chunk.byteLength - at);
        head.set(chunk.subarray(at, at + n), headHave);
        headHave += n;
        at += n;
        if (headHave < HEADER) break;
        headHave = 0;
        const kind = head.readUInt8(0);
        const length = head.readUInt32BE(9);
        const bad = kind === DATA ? length === 0 || length > CHUNK : kind !== END || length !== DIGEST_BYTES;
        if (bad) throw new ProtocolError(`the transfer stream holds a malformed record (kind ${kind}, ${length} bytes)`);
        const payload = kind === DATA ? pool.take(length) : Buffer.allocUnsafe(length);
        record = { kind, offset: Number(head.readBigUInt64BE(1)), payload, have: 0 };
      }
      const n = Math.min(record.payload.length - record.have, chunk.byteLength - at);
      record.payload.set(chunk.subarray(at, at + n), record.have);
      record.have += n;
      at += n;
      if (record.have < record.payload.length) break;
      const { kind, offset, payload } = record;
      record = null;
      yield kind === DATA ? { kind: 'data', offset, data: payload } : { kind: 'end', digest: payload };
    }
  }
}
