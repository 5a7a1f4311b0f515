import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from './config.js';

/** Where an agent without a configured token keeps the one it made on first start. */
export const tokenFile = (dataDir: string): string => join(dataDir, 'token');

/**
 * The agent's token when the config names none: read from `<dataDir>/token`, or made there on first
 * start (32 random bytes, mode 0600, flushed), so no agent ever serves unauthenticated. Local tools
 * (the quick start, the CLI) read the same file.
 */
export async function ensureToken(dataDir: string): Promise<{ token: string; file: string; created: boolean }> {
  const file = tokenFile(dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // Written whole and flushed under a temporary name, then linked into place: a kill at any step leaves
  // either no token file or a complete one, never an empty name that would stop every later start.
  const token = randomBytes(32).toString('base64url');
  const temp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(`${token}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    // link() refuses an existing name: a token already there (or a second agent's) wins.
    await link(temp, file);
    await syncFolder(dataDir);
    return { token, file, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await rm(temp, { force: true });
  }
  const found = await lstat(file);
  if (!found.isFile()) throw new ConfigError(`${file} is not a regular file; remove it or set token in the config`);
  if ((found.mode & 0o077) !== 0) {
    throw new ConfigError(`${file} can be read by other users (mode ${(found.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  const existing = (await readFile(file, 'utf8')).trim();
  if (existing.length < 16) throw new ConfigError(`${file} holds no token of at least 16 characters`);
  return { token: existing, file, created: false };
}

async function syncFolder(dir: string): Promise<void> {
  const folder = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
