import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheFileOf, loadBundle, writeCodeCache } from './code-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'kindling-code-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A bundle whose function is compiled by the run that makes its cache; `word` is four letters, so every variant has one length. */
const bundle = (word: string) => `'use strict';\nconst { basename } = require('node:path');\nmodule.exports = { word: () => '${word}', file: basename(__filename) };\n`;
type Exports = { word(): string; file: string };

/** Writes the bundle and a cache made by running `cachedFrom` (the same text unless said). */
function cached(name: string, word: string, cachedFrom = word): string {
  const file = join(dir, name);
  writeFileSync(file, bundle(cachedFrom));
  const made = loadBundle(file);
  (made.exports as Exports).word();
  writeCodeCache(file, made);
  writeFileSync(file, bundle(word));
  return file;
}

describe('a bundle run with its code cache (issue 20)', () => {
  it('runs as require would, and after a run writes a cache that the next load uses, leaving no temporary file', () => {
    const file = cached('fresh.cjs', 'same');
    const loaded = loadBundle(file);
    expect(loaded.cache).toBe('used');
    expect(loaded.exports).toMatchObject({ file: 'fresh.cjs' });
    expect((loaded.exports as Exports).word()).toBe('same');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('runs without a cache', () => {
    const file = join(dir, 'none.cjs');
    writeFileSync(file, bundle('none'));
    const loaded = loadBundle(file);
    expect(loaded.cache).toBe('none');
    expect((loaded.exports as Exports).word()).toBe('none');
  });

  it('does not use a cache made from other text of the same length, which V8 itself would run', () => {
    const loaded = loadBundle(cached('stale.cjs', 'new!', 'old!'));
    expect(loaded.cache).toBe('none');
    expect((loaded.exports as Exports).word()).toBe('new!');
  });

  it('does not use a damaged or cut cache', () => {
    const file = cached('damaged.cjs', 'fine');
    const data = readFileSync(cacheFileOf(file));
    for (const bad of [Buffer.concat([data.subarray(0, -1), Buffer.from([data.at(-1)! ^ 1])]), data.subarray(0, data.length - 8), data.subarray(0, 10), Buffer.alloc(0)]) {
      writeFileSync(cacheFileOf(file), bad);
      const loaded = loadBundle(file);
      expect(loaded.cache).toBe('none');
      expect((loaded.exports as Exports).word()).toBe('fine');
    }
  });
});
