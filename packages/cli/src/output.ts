import Table from 'cli-table3';

export type Format = 'table' | 'json' | 'jsonl';
export const FORMATS: readonly Format[] = ['table', 'json', 'jsonl'];

export interface Column<T> {
  header: string;
  value(row: T): string;
}

/** Label and value, in the order a person reads them. */
export type Fields = [label: string, value: string][];

/** Borderless, colourless, like `kubectl get`: easy on the eye, and `awk`/`grep` still work on it. */
const PLAIN = {
  chars: {
    top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
    bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
    left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '',
  },
  style: { head: [], border: [], 'padding-left': 0, 'padding-right': 3 },
};

function render(rows: string[][], head: string[] = []): string {
  const table = new Table({ ...PLAIN, head });
  table.push(...rows);
  // The right padding of the last column is noise at a line's end.
  return table.toString().split('\n').map((line) => line.trimEnd()).join('\n') + '\n';
}

/** Where rows go as they arrive; `end` once, after the last. */
export interface RowWriter<T> {
  add(row: T): void;
  end(): void;
}

/** Writes results in the format asked: a table for people, JSON (one document) or JSON lines for scripts. */
export class Output {
  readonly format: Format;
  readonly #write: (text: string) => void;

  constructor(format: Format, write: (text: string) => void) {
    this.format = format;
    this.#write = write;
  }

  /** Rows: a table with a header row, a JSON array, or one JSON line each. */
  list<T>(rows: readonly T[], columns: readonly Column<T>[], json: (row: T) => unknown): void {
    if (this.format !== 'table') {
      const writer = this.rows(columns, json, () => 0);
      for (const row of rows) writer.add(row);
      return writer.end();
    }
    this.#write(render(rows.map((r) => columns.map((c) => c.value(r))), columns.map((c) => c.header)));
  }

  /**
   * Rows as they arrive (pages of a listing), written at once for scripts: one JSON line each, or a JSON
   * array written element by element (as `JSON.stringify(rows, null, 2)`). A table needs every row for its
   * column widths: it is written at `end`, in `order`.
   */
  rows<T>(columns: readonly Column<T>[], json: (row: T) => unknown, order: (a: T, b: T) => number): RowWriter<T> {
    if (this.format === 'table') {
      const held: T[] = [];
      return { add: (row) => void held.push(row), end: () => this.list(held.sort(order), columns, json) };
    }
    if (this.format === 'jsonl') return { add: (row) => this.#write(JSON.stringify(json(row)) + '\n'), end: () => undefined };
    let count = 0;
    // JSON.stringify(rows, null, 2), a row at a time: each element indented one level.
    const element = (row: T) => JSON.stringify(json(row), null, 2).replaceAll('\n', '\n  ');
    return {
      add: (row) => this.#write(`${count++ === 0 ? '[\n' : ',\n'}  ${element(row)}`),
      end: () => this.#write(count === 0 ? '[]\n' : '\n]\n'),
    };
  }

  /** One resource: label/value lines, or one JSON document (one line in jsonl). */
  item(fields: Fields, json: unknown): void {
    if (this.format === 'table') this.#write(render(fields.map(([label, value]) => [`${label}:`, value])));
    else this.#json(json);
  }

  /** The outcome of an action without a resource to show (a delete), or raw text (a kv value): as it is, or its JSON. */
  text(value: string, json: unknown): void {
    if (this.format === 'table') this.#write(value + '\n');
    else this.#json(json);
  }

  #json(value: unknown): void {
    this.#write(this.format === 'json' ? JSON.stringify(value, null, 2) + '\n' : JSON.stringify(value) + '\n');
  }
}
