import { constants } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';

/** Flushes a file's data to stable storage (on NFS, a COMMIT to the server). */
export async function syncFile(path: string): Promise<void> {
  const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Flushes a folder's entries, so a new or renamed name in it survives a crash of the host. */
export async function syncDir(dir: string): Promise<void> {
  const folder = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/**
 * Makes a finished file durable and then gives it its final name in one step: the file and the
 * folder are flushed before the rename, and the folder again after it, so the final name never
 * points at data that did not reach the disk.
 */
export async function publish(dir: string, from: string, to: string): Promise<void> {
  await syncFile(join(dir, from));
  await syncDir(dir);
  await rename(join(dir, from), join(dir, to));
  await syncDir(dir);
}
