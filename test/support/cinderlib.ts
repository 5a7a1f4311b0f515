import { execFile, execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Connection, Volume } from '@kindling/sdk';

// Shared helpers for the cinderlib-parity scenarios: real qemu-io I/O on attached files, real
// immutable-file failures, and waiting for pushed status changes.

const exec = promisify(execFile);
export const GiB = 1024 ** 3;

export type ImageFormat = 'raw' | 'qcow2';

/** The format of the file an attachment points at (the active file: a qcow2 overlay once snapshotted). */
export function formatOf(conn: Connection): ImageFormat {
  const format = conn.connectionInfo.data.format;
  if (format !== 'raw' && format !== 'qcow2') throw new Error(`connection ${conn.id} has no usable format: ${String(format)}`);
  return format;
}

/** Writes `pattern` (a byte) over [offset, offset+length) of the attached file with qemu-io. */
export async function writePattern(conn: Connection, pattern: number, offset = '0', length = '1M'): Promise<void> {
  if (!conn.path) throw new Error(`connection ${conn.id} has no local path`);
  await exec('qemu-io', ['-f', formatOf(conn), '-c', `write -P 0x${pattern.toString(16)} ${offset} ${length}`, conn.path]);
}

/** True when every byte of [offset, offset+length) of the attached file reads as `pattern`. */
export async function readsPattern(conn: Connection, pattern: number, offset = '0', length = '1M'): Promise<boolean> {
  if (!conn.path) throw new Error(`connection ${conn.id} has no local path`);
  try {
    const { stdout } = await exec('qemu-io', ['-f', formatOf(conn), '-c', `read -P 0x${pattern.toString(16)} ${offset} ${length}`, conn.path]);
    return !stdout.includes('Pattern verification failed');
  } catch (err) {
    const out = String((err as { stdout?: string }).stdout ?? '');
    if (out.includes('Pattern verification failed')) return false;
    throw err;
  }
}

/** The size the attached file shows a reader, in bytes (cinderlib's _get_vol_size). */
export async function virtualSize(path: string, format: ImageFormat): Promise<number> {
  const { stdout } = await exec('qemu-img', ['info', '--output=json', '-U', '-f', format, path]);
  return (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
}

/** Attaches, runs `fn` on the connection, detaches (also when `fn` throws). */
export async function whileAttached<T>(vol: Volume, fn: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await vol.attach();
  try {
    return await fn(conn);
  } finally {
    await vol.detach();
  }
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
