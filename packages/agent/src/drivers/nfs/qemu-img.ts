import type { Runner } from '../../exec/run.js';
import { progressMeter, qemuImgFraction } from '../../progress.js';

/**
 * One small function per qemu-img command. The input format is always given with -f: probing a raw
 * file a guest wrote a qcow2 header into would follow a backing file of the guest's choosing. Headers
 * are read by image-header.ts, not `qemu-img info`, which would open whatever backing files they name.
 */

export type ImageFormat = 'raw' | 'qcow2';

// Long copies of large images must not be cut short by run()'s default timeout.
const LONG_MS = 6 * 60 * 60 * 1000;

/**
 * Writes a new image into `target` (a file the agent made, see safe-file.ts), of `size` bytes or
 * `<n>G`; with `backing`, an overlay, whose backing file is named as given (relative to the overlay)
 * and not opened (-u: the target is reached through a descriptor path, not the share folder).
 */
export async function create(
  run: Runner,
  target: string,
  format: ImageFormat,
  size: `${number}G` | number,
  backing?: { file: string; format: ImageFormat },
): Promise<void> {
  const overlay = backing ? ['-u', '-F', backing.format, '-b', backing.file] : [];
  await run(['qemu-img', 'create', '-q', '-f', format, ...overlay, target, String(size)]);
}

/** Writes the overlay's data into its backing file; -d leaves the overlay as is, the caller deletes it. */
export async function commit(run: Runner, path: string, totalBytes: number): Promise<void> {
  await run(['qemu-img', 'commit', '-p', '-f', 'qcow2', '-d', path], { timeoutMs: LONG_MS, copy: true, ...meter(totalBytes) });
}

/** Progress of a `-p` copy of `totalBytes`, as run options that read qemu-img's meter. */
function meter(totalBytes: number): { onStdoutLine: (line: string) => void } {
  const report = progressMeter(totalBytes);
  return {
    onStdoutLine: (line) => {
      const fraction = qemuImgFraction(line);
      if (fraction !== null) report(Math.round(fraction * totalBytes));
    },
  };
}

/** Points the overlay's header at another backing file without copying data (-u), as cinder's _rebase_img. */
export async function rebaseUnsafe(run: Runner, path: string, backingFile: string, backingFormat: ImageFormat): Promise<void> {
  await run(['qemu-img', 'rebase', '-q', '-f', 'qcow2', '-u', '-b', backingFile, '-F', backingFormat, path]);
}

/**
 * Copies an image (flattening its chain) into an existing, empty image at least as large (-n: qemu-img
 * never creates or opens the target by a name on the share); `preallocate` writes every block (-S 0).
 */
export async function convert(
  run: Runner,
  src: { path: string; format: ImageFormat },
  dst: { path: string; format: ImageFormat },
  preallocate: boolean,
  totalBytes: number,
): Promise<void> {
  await run(
    [
      'qemu-img',
      'convert',
      '-p',
      '-n',
      '--target-is-zero',
      '-f',
      src.format,
      '-O',
      dst.format,
      ...(preallocate ? ['-S', '0'] : []),
      src.path,
      dst.path,
    ],
    { timeoutMs: LONG_MS, copy: true, ...meter(totalBytes) },
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
