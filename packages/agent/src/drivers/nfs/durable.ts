import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { charged } from '../../cost.js';

/** Every flush of the share goes through here, so the bench can count them per request (cost.ts). */
const flush = (work: () => Promise<void>): Promise<void> => charged('flush', 'flushes', work);

/** Flushes a file's data and what reaching it needs (its size, its blocks), not its times: fdatasync. */
export async function syncData(file: FileHandle): Promise<void> {
  await flush(() => file.datasync());
}

/** Flushes a folder's entries, so a new or renamed name in it survives a crash of the host. */
export async function syncDir(dir: string): Promise<void> {
  const folder = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await flush(() => folder.sync());
  } finally {
    await folder.close();
  }
}
