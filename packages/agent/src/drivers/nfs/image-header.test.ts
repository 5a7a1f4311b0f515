import { link, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError } from '@kindling/protocol';
import { run } from '../../exec/run.js';
import { readHeader } from './image-header.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-header-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Info {
  'virtual-size': number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
}
const qemuInfo = async (path: string, format: string) =>
  JSON.parse((await run(['qemu-img', 'info', '-f', format, '--output=json', path])).stdout) as Info;

const refusedFor = async (path: string, format: 'raw' | 'qcow2') => {
  const err = await readHeader(path, format).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConflictError);
  return (err as ConflictError).details.refused;
};

describe('readHeader', () => {
  it('agrees with qemu-img info for qcow2 images, grown ones and overlays included', async () => {
    const path = join(dir, 'a.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '3G']);
    expect(await readHeader(path, 'qcow2')).toEqual({ virtualSize: 3 * 1024 ** 3, backingFile: null, backingFormat: null });
    await run(['qemu-img', 'resize', '-q', '-f', 'qcow2', path, '5G']);
    expect((await readHeader(path, 'qcow2')).virtualSize).toBe(5 * 1024 ** 3);
    for (const compat of ['0.10', '1.1']) {
      const top = join(dir, `top-${compat}.qcow2`);
      await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', `compat=${compat}`, '-F', 'qcow2', '-b', 'a.qcow2', top]);
      const info = await qemuInfo(top, 'qcow2');
      expect(await readHeader(top, 'qcow2')).toEqual({
        virtualSize: info['virtual-size'],
        backingFile: info['backing-filename'],
        backingFormat: info['backing-filename-format'],
      });
    }
  });

  it('is the file length for raw images, whatever a guest wrote into them', async () => {
    const path = join(dir, 'b.raw');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/hostname', path, '2G']);
    await run(['truncate', '-s', '2G', path]);
    expect(await readHeader(path, 'raw')).toEqual({ virtualSize: 2 * 1024 ** 3, backingFile: null, backingFormat: null });
  });

  it('refuses a file that is not qcow2, a symlink, a hard link, a folder and an external data file', async () => {
    const garbage = join(dir, 'c');
    await writeFile(garbage, Buffer.alloc(64));
    expect(await refusedFor(garbage, 'qcow2')).toBe('not-qcow2');
    const real = join(dir, 'real.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', real, '1G']);
    await symlink(real, join(dir, 'sym'));
    expect(await refusedFor(join(dir, 'sym'), 'qcow2')).toBe('symlink');
    expect(await refusedFor(join(dir, 'sym'), 'raw')).toBe('symlink');
    await link(real, join(dir, 'hard'));
    expect(await refusedFor(join(dir, 'hard'), 'qcow2')).toBe('hard-linked');
    expect(await refusedFor(dir, 'raw')).toBe('not-a-regular-file');
    const external = join(dir, 'ext.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', `data_file=${join(dir, 'ext.data')}`, external, '1G']);
    expect(await refusedFor(external, 'qcow2')).toBe('external-data-file');
  });
});
