import { open, stat } from 'node:fs/promises';
import type { Runner } from '../../exec/run.js';
import * as qemuImg from './qemu-img.js';
import type { ImageFormat } from './qemu-img.js';

const QCOW2_MAGIC = 0x514649fb; // 'QFI\xfb'
const QCOW2_SIZE_OFFSET = 24; // big-endian uint64: the virtual size, in every qcow2 version

/**
 * An image's virtual size read straight from the file: the length of a raw file, or the size field of
 * a qcow2 header. Scanning a share of 1,000 volumes then costs 1,000 small reads, not 1,000
 * `qemu-img info` processes (~8 ms each here). Null when the file is not the format it should be.
 */
export async function virtualSize(path: string, format: ImageFormat): Promise<number | null> {
  if (format === 'raw') return (await stat(path)).size;
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(QCOW2_SIZE_OFFSET + 8);
    const { bytesRead } = await file.read(header, 0, header.length, 0);
    if (bytesRead < header.length || header.readUInt32BE(0) !== QCOW2_MAGIC) return null;
    return Number(header.readBigUInt64BE(QCOW2_SIZE_OFFSET));
  } finally {
    await file.close();
  }
}

/** The virtual size from the file itself, or from `qemu-img info` when the header is not what it should be. */
export async function sizeOf(run: Runner, path: string, format: ImageFormat): Promise<number> {
  return (await virtualSize(path, format)) ?? (await qemuImg.info(run, path, format)).virtualSize;
}
