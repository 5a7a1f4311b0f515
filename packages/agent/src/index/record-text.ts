/**
 * Volume and snapshot records stay in memory as the JSON text LevelDB holds, parsed when read: at
 * 100,000 volumes parsing every record at open cost more than reading them, and the objects several
 * times the text's memory. The in-memory lookups need only a few top-level fields of each record,
 * read here from the text without building the record.
 */

/** The fields the lookups key on: by id, by backend and status, by backend and name, by owning volume. */
export interface RecordKeys {
  id: string;
  backend: string;
  name: string | null;
  status: string;
  volumeId: string | null;
}

export type RecordKind = 'volume' | 'snapshot';

/** The fields read per kind: a volume has no owning volume, a snapshot's name is not looked up. */
const WANTED: Record<RecordKind, readonly (keyof RecordKeys)[]> = {
  volume: ['id', 'backend', 'name', 'status'],
  snapshot: ['id', 'backend', 'status', 'volumeId'],
};

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;

/** The index of the quote that ends the string whose opening quote is at `at`, or -1. */
function stringEnd(text: string, at: number): number {
  for (let quote = text.indexOf('"', at + 1); quote !== -1; quote = text.indexOf('"', quote + 1)) {
    let before = quote - 1;
    while (text.charCodeAt(before) === BACKSLASH) before--;
    // An even run of backslashes escapes itself, not the quote.
    if ((quote - 1 - before) % 2 === 0) return quote;
  }
  return -1;
}

/** The index just past the value that starts at `at` (string, object, list or literal), or -1. */
function valueEnd(text: string, at: number): number {
  const first = text.charCodeAt(at);
  if (first === QUOTE) {
    const end = stringEnd(text, at);
    return end < 0 ? -1 : end + 1;
  }
  if (first === OPEN || first === OPEN_LIST) {
    let depth = 0;
    for (let i = at; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        i = stringEnd(text, i);
        if (i < 0) return -1;
      } else if (c === OPEN || c === OPEN_LIST) depth++;
      else if ((c === CLOSE || c === CLOSE_LIST) && --depth === 0) return i + 1;
    }
    return -1;
  }
  let end = at;
  while (end < text.length && text.charCodeAt(end) !== COMMA && text.charCodeAt(end) !== CLOSE) end++;
  return end;
}

/**
 * The wanted top-level fields, or undefined when the text is not as JSON.stringify writes an object
 * (no whitespace) or a wanted field is missing or neither a string nor null: the caller parses then.
 * It stops once every wanted field is found. That is safe because the index writes records only with
 * JSON.stringify, which never writes a key twice (a later duplicate would win in JSON.parse).
 */
function scan(text: string, wanted: readonly (keyof RecordKeys)[]): RecordKeys | undefined {
  const found: RecordKeys = { id: '', backend: '', name: null, status: '', volumeId: null };
  let left = wanted.length;
  if (text.charCodeAt(0) !== OPEN) return undefined;
  for (let at = 1; at < text.length; ) {
    if (text.charCodeAt(at) !== QUOTE) return undefined;
    const keyEnd = stringEnd(text, at);
    if (keyEnd < 0 || text.charCodeAt(keyEnd + 1) !== COLON) return undefined;
    let field: keyof RecordKeys | undefined;
    for (const name of wanted) if (name.length === keyEnd - at - 1 && text.startsWith(name, at + 1)) field = name;
    const start = keyEnd + 2;
    const end = valueEnd(text, start);
    if (end < 0) return undefined;
    if (field !== undefined) {
      if (text.charCodeAt(start) === QUOTE) {
        const raw = text.slice(start + 1, end - 1);
        found[field] = raw.includes('\\') ? (JSON.parse(text.slice(start, end)) as string) : raw;
      } else if (text.slice(start, end) !== 'null' || field === 'id' || field === 'backend' || field === 'status') return undefined;
      if (--left === 0) return found;
    }
    if (text.charCodeAt(end) !== COMMA) return undefined;
    at = end + 1;
  }
  return undefined;
}

/** A record's lookup fields, from its stored text: read without parsing it where the text allows, else parsed. */
export function keysOf(text: string, kind: RecordKind): RecordKeys {
  const scanned = scan(text, WANTED[kind]);
  if (scanned) return scanned;
  const record = JSON.parse(text) as Partial<RecordKeys>;
  return {
    id: record.id as string,
    backend: record.backend as string,
    name: kind === 'volume' ? (record.name ?? null) : null,
    status: record.status as string,
    volumeId: kind === 'snapshot' ? (record.volumeId ?? null) : null,
  };
}
