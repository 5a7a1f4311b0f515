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

/** The records of a stream, as they arrive; a malformed one is a PROTOCOL error. */
export async function* readRecords(body: AsyncIterable<Uint8Array>): AsyncGenerator<StreamRecord> {
  let pending: Buffer[] = [];
  let have = 0;
  const take = (n: number): Buffer => {
    const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    pending = all.length > n ? [all.subarray(n)] : [];
    have = all.length - n;
    return all.subarray(0, n);
  };
  let next: { kind: number; offset: number; length: number } | null = null;
  for await (const chunk of body) {
    pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    have += chunk.byteLength;
    for (;;) {
      if (!next) {
        if (have < HEADER) break;
        const h = take(HEADER);
        next = { kind: h.readUInt8(0), offset: Number(h.readBigUInt64BE(1)), length: h.readUInt32BE(9) };
        const bad = next.kind === DATA ? next.length === 0 || next.length > CHUNK : next.kind !== END || next.length !== DIGEST_BYTES;
        if (bad) throw new ProtocolError(`the transfer stream holds a malformed record (kind ${next.kind}, ${next.length} bytes)`);
      }
      if (have < next.length) break;
      // A copy: the payload must outlive the chunk buffers it came in.
      const payload = Buffer.from(take(next.length));
      yield next.kind === DATA ? { kind: 'data', offset: next.offset, data: payload } : { kind: 'end', digest: payload };
      next = null;
    }
  }
}
