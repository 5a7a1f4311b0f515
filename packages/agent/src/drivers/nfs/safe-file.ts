import { constants } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { ConflictError } from '@kindling/protocol';

/**
 * Shares are hostile input: anyone who can write the export (typically every compute host) can put a
 * symlink, a hard link or a crafted image where a volume file should be. Every file the driver reads,
 * resizes or copies goes through here first.
 */

export type Refusal =
  | 'symlink'
  | 'not-a-regular-file'
  | 'hard-linked'
  | 'not-qcow2'
  | 'unexpected-backing-file'
  | 'base-has-backing-file'
  | 'external-data-file'
  | 'too-large';

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
