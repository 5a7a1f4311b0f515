import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../exec/run.js';
import { virtualSize } from './image-size.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-size-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const infoSize = async (path: string, format: string) =>
  (JSON.parse((await run(['qemu-img', 'info', '-f', format, '--output=json', path])).stdout) as { 'virtual-size': number })['virtual-size'];

describe('virtualSize', () => {
  it('agrees with qemu-img info for qcow2 images, grown ones included', async () => {
    const path = join(dir, 'a.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '3G']);
    expect(await virtualSize(path, 'qcow2')).toBe(await infoSize(path, 'qcow2'));
    await run(['qemu-img', 'resize', '-q', '-f', 'qcow2', path, '5G']);
    expect(await virtualSize(path, 'qcow2')).toBe(5 * 1024 ** 3);
  });

  it('is the file length for raw images', async () => {
    const path = join(dir, 'b.raw');
    await run(['truncate', '-s', '2G', path]);
    expect(await virtualSize(path, 'raw')).toBe(await infoSize(path, 'raw'));
  });

  it('says null for a file that is not qcow2, rather than guessing', async () => {
    const path = join(dir, 'c');
    await writeFile(path, Buffer.alloc(64));
    expect(await virtualSize(path, 'qcow2')).toBeNull();
  });
});
