import type { FileHandle } from 'node:fs/promises';
import type { ImageFormat } from './qemu-img.js';
import { openRegular, refusal } from './safe-file.js';

/** What the driver needs of an image's header, read from the file itself (no qemu-img process). */
export interface ImageHeader {
  virtualSize: number;
  /** The backing file name as written in a qcow2 header (relative here), else null. */
  backingFile: string | null;
  backingFormat: string | null;
}

const QCOW2_MAGIC = 0x514649fb; // 'QFI\xfb'
const V2_HEADER_BYTES = 72;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_END = 0;
const INCOMPAT_DATA_FILE = 1n << 2n;
// The header, its extensions and the backing file name must all lie in the first cluster (at most 2 MiB).
const HEAD_BYTES = 64 * 1024;
const MAX_CLUSTER_BITS = 21;

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await file.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

/**
 * A qcow2 header as qemu reads it (docs/interop/qcow2.txt): virtual size, backing file name and
 * format. An image with an external data file is refused: its data would come from a path of the
 * writer's choosing.
 */
async function qcow2Header(path: string, file: FileHandle): Promise<ImageHeader> {
  let head = await readAt(file, 0, HEAD_BYTES);
  const malformed = (why: string) => refusal(path, 'not-qcow2', `it is not a valid qcow2 image (${why})`);
  if (head.length < V2_HEADER_BYTES || head.readUInt32BE(0) !== QCOW2_MAGIC) throw malformed('no qcow2 header');
  const version = head.readUInt32BE(4);
  const backingOffset = Number(head.readBigUInt64BE(8));
  const backingSize = head.readUInt32BE(16);
  const clusterBits = head.readUInt32BE(20);
  const virtualSize = Number(head.readBigUInt64BE(24));
  if ((version !== 2 && version !== 3) || clusterBits < 9 || clusterBits > MAX_CLUSTER_BITS) throw malformed(`version ${version}`);
  const clusterSize = 2 ** clusterBits;
  if (head.length < clusterSize) head = await readAt(file, 0, clusterSize);
  let extStart = V2_HEADER_BYTES;
  if (version === 3) {
    if (head.length < 104) throw malformed('short version 3 header');
    if (head.readBigUInt64BE(72) & INCOMPAT_DATA_FILE) {
      throw refusal(path, 'external-data-file', 'its data lives in an external data file');
    }
    extStart = head.readUInt32BE(100);
  }
  let backingFormat: string | null = null;
  // As qemu's qcow2_read_extensions: up to the end marker, the backing file name or the cluster's end.
  const extEnd = backingOffset !== 0 ? Math.min(backingOffset, head.length) : head.length;
  for (let at = extStart; at + 8 <= extEnd; ) {
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === EXT_END) break;
    if (at + 8 + length > extEnd) throw malformed('a header extension runs past its end');
    if (type === EXT_BACKING_FORMAT) backingFormat = head.toString('latin1', at + 8, at + 8 + length);
    at += 8 + Math.ceil(length / 8) * 8;
  }
  let backingFile: string | null = null;
  if (backingOffset !== 0) {
    if (backingSize === 0 || backingSize > 1023 || backingOffset + backingSize > head.length) throw malformed('bad backing file name');
    backingFile = head.toString('utf8', backingOffset, backingOffset + backingSize);
  }
  return { virtualSize, backingFile, backingFormat };
}

/**
 * An image's header, read from the file after checking it is a regular, singly linked file (never
 * through a symlink). A raw image is its bytes: its length is its size, and it has no backing file
 * whatever a guest wrote into it.
 */
export async function readHeader(path: string, format: ImageFormat): Promise<ImageHeader> {
  const file = await openRegular(path);
  try {
    return await headerOf(path, file, format);
  } finally {
    await file.close();
  }
}

/** The header of a file already opened with openRegular. */
export async function headerOf(path: string, file: FileHandle, format: ImageFormat): Promise<ImageHeader> {
  if (format === 'raw') return { virtualSize: (await file.stat()).size, backingFile: null, backingFormat: null };
  return qcow2Header(path, file);
}
