import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { Agent } from './agent.js';
import type { Backend } from './backend.js';
import type { Connection } from './connection.js';
import type { Snapshot } from './snapshot.js';
import type { Volume } from './volume.js';

const SRC = dirname(fileURLToPath(import.meta.url));

/** Every relative import of a file, `import type` and `import('…')` types included: a cycle of types is still a cycle to read. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)'(\.{1,2}\/[^']+)'/gm)].map((m) => m[1] as string);
  return specifiers.map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** Each cycle once, as the files on it from its first-found member back to it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const visit = (file: string, path: string[]): void => {
    const at = path.indexOf(file);
    if (at >= 0) {
      found.push(path.slice(at).map((f) => relative(SRC, f)));
      return;
    }
    if (done.has(file)) return;
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    done.add(file);
  };
  for (const file of graph.keys()) visit(file, []);
  return found;
}

describe('the SDK import graph', () => {
  it('has no cycle, type-only imports included', () => {
    const graph = new Map(sourceFiles(SRC).map((file) => [file, importsOf(file)]));
    expect(graph.size).toBeGreaterThan(10);
    expect(cycles(graph)).toEqual([]);
  });

  it('keeps the exactly-once ledger in one module (only ledger.ts mints request ids and resends) and every file under 450 lines', () => {
    const files = sourceFiles(SRC);
    const minting = files.filter((f) => /\brandomUUID\b|(?<!function )\bbusyDelay\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
    expect(minting.filter((f) => !f.startsWith('testing/'))).toEqual(['ledger.ts']);
    const long = files.map((f) => [relative(SRC, f), readFileSync(f, 'utf8').split('\n').length] as const).filter(([, n]) => n > 450);
    expect(long).toEqual([]);
  });

  // Checked by the build's type-check of tests: the classes name each other through registry.ts, and a
  // slip there would turn these types into `any` without any other error.
  it('leaves the classes naming each other by their real types', () => {
    expectTypeOf<Snapshot['volume']>().toEqualTypeOf<Volume>();
    expectTypeOf<Connection['volume']>().toEqualTypeOf<Volume>();
    expectTypeOf<Volume['backend']>().toEqualTypeOf<Backend>();
    expectTypeOf<Volume['snapshots']>().toEqualTypeOf<Set<Snapshot>>();
    expectTypeOf<Backend['agent']>().toEqualTypeOf<Agent>();
    expectTypeOf<ReturnType<Volume['createSnapshot']>>().toEqualTypeOf<Promise<Snapshot>>();
  });
});
