import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from './config.js';
import { ensureToken } from './token.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-token-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the token made on first start', () => {
  it('is made once, mode 0600, and read back the same on every later start', async () => {
    const data = join(dir, 'data');
    const first = await ensureToken(data);
    expect(first.created).toBe(true);
    expect(first.token.length).toBeGreaterThanOrEqual(40);
    expect((await stat(first.file)).mode & 0o777).toBe(0o600);
    expect((await readFile(first.file, 'utf8')).trim()).toBe(first.token);
    const again = await ensureToken(data);
    expect(again).toEqual({ ...first, created: false });
  });

  it('refuses a token file others can read, a symlink, or one without a token', async () => {
    const file = join(dir, 'token');
    await writeFile(file, 'a-token-of-enough-length\n', { mode: 0o644 });
    await chmod(file, 0o644);
    await expect(ensureToken(dir)).rejects.toThrow(/can be read by other users/);
    await rm(file);
    await symlink('/etc/hostname', file);
    await expect(ensureToken(dir)).rejects.toBeInstanceOf(ConfigError);
    await rm(file);
    await writeFile(file, 'short\n', { mode: 0o600 });
    await expect(ensureToken(dir)).rejects.toThrow(/no token of at least 16/);
  });

  it('a first start killed mid-write leaves only a temporary file, which blocks nothing', async () => {
    const data = join(dir, 'data');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'token.tmp-deadbeef'), '', { mode: 0o600 });
    const made = await ensureToken(data);
    expect(made.created).toBe(true);
    expect((await readdir(data)).filter((n) => n.startsWith('token'))).toEqual(['token', 'token.tmp-deadbeef']);
    expect((await ensureToken(data)).token).toBe(made.token);
  });
});
