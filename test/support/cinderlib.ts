import { execFile, execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Connection } from '@kindling/sdk';
import { runLocal } from './host-probe.js';
import {
  imageInfo,
  readsPattern as readsPatternAt,
  writePattern as writePatternAt,
  type ImageFormat,
} from './storage-probe.js';

// Shared helpers for the host's cinderlib-parity scenarios: real qemu-io I/O on attached files (the
// storage-probe checks, run here), real immutable-file failures, and waiting for pushed status changes.

const exec = promisify(execFile);
export { GiB, whileAttached } from './storage-probe.js';

/** Writes `pattern` (a byte) over [offset, offset+length) of the attached file with qemu-io. */
export const writePattern = (conn: Connection, pattern: number, offset?: string, length?: string): Promise<void> =>
  writePatternAt(runLocal, conn, pattern, offset, length);

/** True when every byte of [offset, offset+length) of the attached file reads as `pattern`. */
export const readsPattern = (conn: Connection, pattern: number, offset?: string, length?: string): Promise<boolean> =>
  readsPatternAt(runLocal, conn, pattern, offset, length);

/** The size the image file shows a reader, in bytes (cinderlib's _get_vol_size). */
export async function virtualSize(path: string, format: ImageFormat): Promise<number> {
  return (await imageInfo(runLocal, path, format))['virtual-size'];
}

export async function chattr(path: string, flag: '+i' | '-i'): Promise<void> {
  await exec('chattr', [flag, path]);
}

/**
 * Runs `fn` while `path` is immutable (`chattr +i`): the file cannot be written, renamed or removed,
 * and a folder gets no new entries, even for root. The flag is always cleared again.
 */
export async function whileImmutable<T>(path: string, fn: () => Promise<T>): Promise<T> {
  await chattr(path, '+i');
  try {
    return await fn();
  } finally {
    await chattr(path, '-i');
  }
}

/**
 * Null when `chattr +i` works here (root on a file system with the immutable flag, as ext4), else why
 * not: the failure scenarios need it to make storage refuse for real.
 */
export function immutableUnavailable(): string | null {
  let dir: string | null = null;
  try {
    dir = execFileSync('mktemp', ['-d', join(tmpdir(), 'kindling-chattr-XXXXXX')]).toString().trim();
    const file = join(dir, 'f');
    execFileSync('touch', [file]);
    execFileSync('chattr', ['+i', file], { stdio: 'pipe' });
    let removed = true;
    try {
      execFileSync('rm', ['-f', file], { stdio: 'pipe' });
    } catch {
      removed = false;
    }
    execFileSync('chattr', ['-i', file], { stdio: 'pipe' });
    return removed ? 'chattr +i did not stop rm here' : null;
  } catch (err) {
    return `chattr +i is not usable here: ${(err as Error).message}`;
  } finally {
    if (dir) execFileSync('rm', ['-rf', dir]);
  }
}

/** Resolves with the first `status` event of `tracked` that equals `wanted`; rejects after `ms`. */
export function nextStatus<S extends string>(
  tracked: { on(event: 'status', fn: (s: S, p: S) => void): unknown; off(event: 'status', fn: (s: S, p: S) => void): unknown },
  wanted: S,
  ms = 5000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      tracked.off('status', listener);
      reject(new Error(`no '${wanted}' status pushed within ${ms} ms`));
    }, ms);
    const listener = (status: S): void => {
      if (status !== wanted) return;
      clearTimeout(timer);
      tracked.off('status', listener);
      resolve();
    };
    tracked.on('status', listener);
  });
}

/** Volume base files (`volume-<uuid>`) present in a share folder. */
export async function volumeFilesIn(share: string): Promise<string[]> {
  return (await readdir(share)).filter((n) => /^volume-[0-9a-f-]{36}$/.test(n));
}
