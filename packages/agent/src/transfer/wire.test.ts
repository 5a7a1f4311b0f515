import { describe, expect, it } from 'vitest';
import { ProtocolError } from '@kindling/protocol';
import { StreamDigest, endRecord, readRecords, type StreamRecord } from './wire.js';

async function* pieces(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

const collect = async (body: AsyncIterable<Uint8Array>): Promise<StreamRecord[]> => {
  const out: StreamRecord[] = [];
  for await (const r of readRecords(body)) out.push(r);
  return out;
};

describe('the transfer stream', () => {
  const sent = new StreamDigest();
  const a = Buffer.alloc(5000, 7);
  const b = Buffer.alloc(3, 9);
  const bytes = Buffer.concat([sent.add(0, a), a, sent.add(2 ** 40, b), b, endRecord(sent.end())]);

  it('reads the same records however the bytes are cut, and both sides agree on the digest', async () => {
    for (const size of [1, 7, 13, 4096, bytes.length]) {
      const records = await collect(pieces(bytes, size));
      expect(records.map((r) => (r.kind === 'data' ? [r.offset, r.data.length] : 'end'))).toEqual([[0, 5000], [2 ** 40, 3], 'end']);
      const received = new StreamDigest();
      for (const r of records) if (r.kind === 'data') received.add(r.offset, r.data);
      const end = records.at(-1);
      expect(end?.kind === 'end' && received.end().equals(end.digest)).toBe(true);
    }
  });

  it('refuses a malformed record', async () => {
    const bad = Buffer.from(bytes);
    bad.writeUInt8(9, 0);
    await expect(collect(pieces(bad, 64))).rejects.toBeInstanceOf(ProtocolError);
  });
});
