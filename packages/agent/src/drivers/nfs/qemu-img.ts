import type { Runner } from '../../exec/run.js';

/**
 * One small function per qemu-img command. The input format is always given with -f: probing a raw
 * file a guest wrote a qcow2 header into would follow a backing file of the guest's choosing. Headers
 * are read by image-header.ts, not `qemu-img info`, which would open whatever backing files they name.
 */

export type ImageFormat = 'raw' | 'qcow2';

// Long copies of large images must not be cut short by run()'s default timeout.
const LONG_MS = 6 * 60 * 60 * 1000;

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
