import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

// Runs a CommonJS bundle as require would, compiled from a V8 code cache made when it was built (issue
// 20: the start reads the bytecode of what it runs instead of compiling it). Node 20 caches no ES module
// code (module.enableCompileCache came in 22), hence CommonJS through vm.Script.
// V8 takes a cache for any text of the same length and, in release builds, does not check its payload:
// the cache file starts with a digest of this Node, the bundle's bytes and the payload, and is used only
// when that matches. A missing, stale or damaged cache costs the compile it would have saved, no more.

const DIGEST_BYTES = 32;

const digest = (source: Buffer, payload: Buffer): Buffer =>
  createHash('sha256').update(`${process.version} ${process.arch}\0`).update(source).update(payload).digest();

export const cacheFileOf = (file: string): string => `${file}.cache`;

export interface LoadedBundle {
  /** What the bundle put in module.exports. */
  exports: unknown;
  /** The bytes it ran, and its compiled form: writeCodeCache's input. */
  source: Buffer;
  script: Script;
  /** Whether its cache was used: `rejected` by V8 (another V8 or other V8 flags), `none` (missing, stale or damaged). */
  cache: 'used' | 'rejected' | 'none';
}

/** The cache's payload if it was made from these bytes under this Node, else undefined. */
function validCache(file: string, source: Buffer): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(cacheFileOf(file));
  } catch {
    return undefined;
  }
  const payload = data.subarray(DIGEST_BYTES);
  return payload.length > 0 && digest(source, payload).equals(data.subarray(0, DIGEST_BYTES)) ? payload : undefined;
}

export function loadBundle(file: string): LoadedBundle {
  const source = readFileSync(file);
  const cachedData = validCache(file, source);
  // require's own wrapper, on the bundle's first line so that its line numbers stay those of the file.
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source.toString()}\n})`;
  const script = new Script(wrapped, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(file), module, file, dirname(file));
  const cache = cachedData === undefined ? 'none' : script.cachedDataRejected === true ? 'rejected' : 'used';
  return { exports: module.exports, source, script, cache };
}

/** Writes the cache of a bundle that has run (so that it holds what the run compiled): whole or not at all. */
export function writeCodeCache(file: string, bundle: LoadedBundle): void {
  const payload = bundle.script.createCachedData();
  const temporary = `${cacheFileOf(file)}.${process.pid}.tmp`;
  writeFileSync(temporary, Buffer.concat([digest(bundle.source, payload), payload]));
  renameSync(temporary, cacheFileOf(file));
}
