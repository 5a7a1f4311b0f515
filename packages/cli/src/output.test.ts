import { describe, expect, it } from 'vitest';
import { Output, type Column, type Format } from './output.js';

interface Row {
  name: string;
  n: number;
}
const COLUMNS: Column<Row>[] = [{ header: 'NAME', value: (r) => r.name }];
const byN = (a: Row, b: Row) => a.n - b.n;

/** An Output whose writes are kept one by one, so a test sees what reached stdout and when. */
function capture(format: Format): { out: Output; writes: string[] } {
  const writes: string[] = [];
  return { out: new Output(format, (text) => writes.push(text)), writes };
}

describe('rows as they arrive', () => {
  const rows: Row[] = [{ name: 'b', n: 2 }, { name: 'a', n: 1 }, { name: 'c', n: 3 }];

  it('writes each JSON line as its row arrives, before the listing ends', () => {
    const { out, writes } = capture('jsonl');
    const w = out.rows(COLUMNS, (r) => r, byN);
    w.add(rows[0]!);
    expect(writes.join('')).toBe('{"name":"b","n":2}\n');
    w.add(rows[1]!);
    w.end();
    expect(writes.join('')).toBe('{"name":"b","n":2}\n{"name":"a","n":1}\n');
  });

  it('writes a JSON array element by element, the same text as the whole array at once, empty or not', () => {
    for (const some of [rows, rows.slice(0, 1), []]) {
      const { out, writes } = capture('json');
      const w = out.rows(COLUMNS, (r) => r, byN);
      for (const row of some) {
        const before = writes.length;
        w.add(row);
        expect(writes.length).toBe(before + 1);
      }
      w.end();
      expect(writes.join('')).toBe(JSON.stringify(some, null, 2) + '\n');
      expect(JSON.parse(writes.join(''))).toEqual(some);
    }
  });

  it('writes a table once every row is in, in order', () => {
    const { out, writes } = capture('table');
    const w = out.rows(COLUMNS, (r) => r, byN);
    for (const row of rows) w.add(row);
    expect(writes).toEqual([]);
    w.end();
    expect(writes.join('').split('\n')).toEqual(['NAME', 'a', 'b', 'c', '']);
  });
});
