import { randomUUID } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * A small file's text, or null when there is none (a symlink in its place is not followed, and reads
 * as none). Synchronous: the agent's own small files on a local disk, read in microseconds.
 */
export function readOwnFile(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes `path` hold `text` unless it already does: written under a new name (O_EXCL, no symlink
 * followed), flushed, then renamed into place, so a reader sees the old text or the new, whole.
 */
export async function ensureOwnFile(path: string, text: string, mode: number): Promise<void> {
  if (readOwnFile(path) === text) return;
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const temp = `${path}.${randomUUID()}`;
  const file = await open(temp, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, mode);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path).catch(async (err: unknown) => {
    await rm(temp, { force: true });
    throw err;
  });
}
