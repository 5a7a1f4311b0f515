import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@kindling/sdk';

/** A whole number of GiB, as the agent counts sizes. */
export function parseSize(text: string, what = 'size'): number {
  if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError(`${what} is a whole number of GiB, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** `key=value` pairs, repeated `--metadata` flags. */
export function parseMetadata(pairs: readonly string[] | undefined): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  const metadata: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--metadata takes key=value, not ${JSON.stringify(pair)}`);
    metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return metadata;
}

/** Commander collects a repeated option into a list. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** JSON given inline, or `@FILE` to read it from a file (a connector is too long for a command line). */
export function parseJsonArg(text: string, what: string): Record<string, unknown> {
  let source = text;
  if (text.startsWith('@')) {
    try {
      source = readFileSync(text.slice(1), 'utf8');
    } catch (err) {
      throw new InvalidArgumentError(`cannot read ${what} file ${text.slice(1)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch {
    throw new InvalidArgumentError(`${what} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}
