import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** Flushes a folder's entries, so a new or renamed name in it survives a crash of the host. */
export async function syncDir(dir: string): Promise<void> {
  const folder = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
