import { BackendError } from '@kindling/protocol';
import type { Runner } from '../../exec/run.js';

/**
 * One small function per qemu-img command. The input format is always given with -f: probing a raw
 * file a guest wrote a qcow2 header into would follow a backing file of the guest's choosing.
 */

export type ImageFormat = 'raw' | 'qcow2';

export interface ImageInfo {
  /** As qemu-img reports it (the path given for the top image). */
  filename: string;
  format: string;
  virtualSize: number;
  /** The backing file name as written in the qcow2 header (relative here), else null. */
  backingFile: string | null;
  backingFormat: string | null;
}

// Long copies of large images must not be cut short by run()'s default timeout.
const LONG_MS = 6 * 60 * 60 * 1000;

interface RawInfo {
  filename?: unknown;
  format?: unknown;
  'virtual-size'?: unknown;
  'backing-filename'?: unknown;
  'backing-filename-format'?: unknown;
}

function toInfo(raw: RawInfo, command: string[]): ImageInfo {
  if (typeof raw.format !== 'string' || typeof raw['virtual-size'] !== 'number' || typeof raw.filename !== 'string') {
    throw new BackendError('qemu-img info returned an unexpected document', { command, exitCode: 0, stderrTail: '' });
  }
  return {
    filename: raw.filename,
    format: raw.format,
    virtualSize: raw['virtual-size'],
    backingFile: typeof raw['backing-filename'] === 'string' ? raw['backing-filename'] : null,
    backingFormat: typeof raw['backing-filename-format'] === 'string' ? raw['backing-filename-format'] : null,
  };
}

// -U: the image may be open in a guest that holds qemu's write lock; reading its header is still safe.
const infoArgv = (path: string, format: ImageFormat, chain: boolean): string[] => [
  'qemu-img',
  'info',
  '--output=json',
  '-U',
  ...(chain ? ['--backing-chain'] : []),
  '-f',
  format,
  path,
];

export async function info(run: Runner, path: string, format: ImageFormat): Promise<ImageInfo> {
  const command = infoArgv(path, format, false);
  const { stdout } = await run(command);
  return toInfo(JSON.parse(stdout) as RawInfo, command);
}

/** The image and all its backing files, top first. */
export async function backingChain(run: Runner, path: string, format: ImageFormat): Promise<ImageInfo[]> {
  const command = infoArgv(path, format, true);
  const { stdout } = await run(command);
  const parsed = JSON.parse(stdout) as unknown;
  const list = Array.isArray(parsed) ? (parsed as RawInfo[]) : [parsed as RawInfo];
  return list.map((raw) => toInfo(raw, command));
}

/** A new image (size in bytes or `<n>G`); with `backing`, an overlay (its size defaults to the backing file's). */
export async function create(
  run: Runner,
  path: string,
  format: ImageFormat,
  opts: { size?: `${number}G` | number; backing?: { file: string; format: ImageFormat } },
): Promise<void> {
  const backing = opts.backing ? ['-F', opts.backing.format, '-b', opts.backing.file] : [];
  const size = opts.size !== undefined ? [String(opts.size)] : [];
  await run(['qemu-img', 'create', '-q', '-f', format, ...backing, path, ...size]);
}

/** Writes the overlay's data into its backing file; -d leaves the overlay as is, the caller deletes it. */
export async function commit(run: Runner, path: string): Promise<void> {
  await run(['qemu-img', 'commit', '-q', '-f', 'qcow2', '-d', path], { timeoutMs: LONG_MS });
}

/** Points the overlay's header at another backing file without copying data (-u), as cinder's _rebase_img. */
export async function rebaseUnsafe(run: Runner, path: string, backingFile: string, backingFormat: ImageFormat): Promise<void> {
  await run(['qemu-img', 'rebase', '-q', '-f', 'qcow2', '-u', '-b', backingFile, '-F', backingFormat, path]);
}

/** Copies an image (flattening its chain) into a new file; `preallocate` writes every block (-S 0). */
export async function convert(
  run: Runner,
  src: { path: string; format: ImageFormat },
  dst: { path: string; format: ImageFormat },
  preallocate: boolean,
): Promise<void> {
  await run(
    ['qemu-img', 'convert', '-q', '-f', src.format, '-O', dst.format, ...(preallocate ? ['-S', '0'] : []), src.path, dst.path],
    { timeoutMs: LONG_MS },
  );
}

/** Grows an image to `sizeGb`; `preallocate` allocates the new space (thick raw). */
export async function resize(
  run: Runner,
  path: string,
  format: ImageFormat,
  sizeGb: number,
  preallocate: boolean,
): Promise<void> {
  await run([
    'qemu-img',
    'resize',
    '-q',
    '-f',
    format,
    ...(preallocate ? ['--preallocation=falloc'] : []),
    path,
    `${sizeGb}G`,
  ]);
}
