import { constants } from 'node:fs';
import { lstat, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError } from '@kindling/protocol';
import { syncData, syncDir } from './durable.js';
import { fault } from './faults.js';

/**
 * Shares are hostile input: anyone who can write the export (typically every compute host) can put a
 * symlink, a hard link or a crafted image where a volume file should be, before or while the agent
 * works. Every file the driver reads, resizes or copies goes through here first, and every file it
 * makes is made here, by the agent itself, and written only through the descriptor it opened.
 */

export type Refusal =
  | 'symlink'
  | 'not-a-regular-file'
  | 'hard-linked'
  | 'not-qcow2'
  | 'unexpected-backing-file'
  | 'base-has-backing-file'
  | 'external-data-file'
  | 'too-large'
  | 'exists'
  | 'replaced';

/**
 * A file on the share that is not what the volume's chain says it must be. A ConflictError: the driver
 * refuses before changing anything, so the service leaves the record as it was.
 */
export function refusal(path: string, reason: Refusal, message: string, details: Record<string, unknown> = {}): ConflictError {
  return new ConflictError(`refusing ${path}: ${message}`, { path, refused: reason, ...details });
}

// O_NONBLOCK: a FIFO swapped in after the lstat must not hang the open.
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens a volume file for reading, refused unless it is a regular file with one link: not a symlink
 * (lstat, then O_NOFOLLOW against a swap in between), not a device or FIFO, not a hard link that
 * could be a file from elsewhere on the same file system.
 */
export async function openRegular(path: string): Promise<FileHandle> {
  const before = await lstat(path);
  if (before.isSymbolicLink()) throw refusal(path, 'symlink', 'it is a symbolic link, not a volume file');
  if (!before.isFile()) throw refusal(path, 'not-a-regular-file', 'it is not a regular file');
  let file: FileHandle;
  try {
    file = await open(path, FLAGS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw refusal(path, 'symlink', 'it is a symbolic link, not a volume file');
    throw err;
  }
  try {
    const st = await file.stat();
    if (!st.isFile() || st.ino !== before.ino || st.dev !== before.dev) {
      throw refusal(path, 'not-a-regular-file', 'it was replaced while being opened');
    }
    if (st.nlink > 1) throw refusal(path, 'hard-linked', `it has ${st.nlink} hard links`, { links: st.nlink });
    return file;
  } catch (err) {
    await file.close();
    throw err;
  }
}

/** A file the agent made and holds open; commands reach it through `arg`, never through its name. */
export interface NewFile {
  dir: string;
  name: string;
  path: string;
  /**
   * The agent's descriptor as a path (`/proc/<agent pid>/fd/<n>`): opening it reaches this very file
   * whatever its name points at by then (a link swapped in is never followed).
   */
  arg: string;
  handle: FileHandle;
}

// O_EXCL with O_CREAT fails on any existing name, a symlink included; O_NOFOLLOW says so twice.
const CREATE = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Makes `name` in `dir` (refused when anything is there) and runs `use` on it; the file is closed after. */
export async function withNewFile<T>(dir: string, name: string, use: (file: NewFile) => Promise<T>): Promise<T> {
  const path = join(dir, name);
  let handle: FileHandle;
  try {
    handle = await open(path, CREATE, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw refusal(path, 'exists', 'something is already there under a name the agent makes');
    throw err;
  }
  try {
    return await use({ dir, name, path, arg: `/proc/${process.pid}/fd/${handle.fd}`, handle });
  } finally {
    await handle.close();
  }
}

/** Refused unless `name` in the file's folder is the file the agent made (not a link or file swapped in). */
export async function expectHolds(file: NewFile, name: string = file.name): Promise<void> {
  const path = join(file.dir, name);
  const [there, own] = await Promise.all([lstat(path).catch(() => null), file.handle.stat()]);
  if (!there || there.ino !== own.ino || there.dev !== own.dev) {
    throw refusal(path, 'replaced', 'the file the agent made there was replaced or removed by someone else');
  }
}

/**
 * Makes a finished new file durable and gives it its final name in one step: the file's data (and the
 * size and blocks that reach it: fdatasync, not the times) is flushed before the rename, the folder
 * after it. No folder flush before the rename: a rename reaches the disk only with the create it
 * follows (a journal keeps their order; NFS commits each name change before answering), and a crash
 * that loses both leaves no name, which recovery reads as an unfinished create. When the name then
 * holds anything but this file (its temporary name was swapped for a link), the impostor is unlinked
 * and it is refused.
 */
export async function publishNew(file: NewFile, to: string): Promise<void> {
  await syncData(file.handle);
  await fault('publish:before-rename');
  await rename(file.path, join(file.dir, to));
  await fault('publish:after-rename');
  try {
    await expectHolds(file, to);
  } catch (err) {
    await rm(join(file.dir, to), { force: true });
    throw err;
  }
  await syncDir(file.dir);
}
