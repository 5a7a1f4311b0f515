import type { Runner } from '../../exec/run.js';
import { progressMeter, qemuImgFraction } from '../../progress.js';

/**
 * One small function per qemu-img command. An existing image is given as qemu's `json:` description
 * (`spec`): each file's format is named (probing a raw file a guest wrote a qcow2 header into would
 * follow a backing file of the guest's choosing) and reached through a descriptor the agent opened and
 * checked, backing files included, so no name on the share is resolved again. Headers are read by
 * image-header.ts, not `qemu-img info`, which would open whatever backing files they name.
 */

export type ImageFormat = 'raw' | 'qcow2';

/**
 * An image chain, top first, each file as a descriptor path: the top and (each over the next) its
 * backing files, the last with none.
 */
export function spec(chain: readonly { format: ImageFormat; arg: string }[]): string {
  const node = (at: number): Record<string, unknown> => {
    const image = chain[at]!;
    const file = { driver: 'file', filename: image.arg };
    if (image.format === 'raw') return { driver: 'raw', file };
    return { driver: 'qcow2', file, backing: at + 1 < chain.length ? node(at + 1) : null };
  };
  return `json:${JSON.stringify(node(0))}`;
}

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

/** Writes the overlay's data (`image`: its spec with its backing chain) into its backing file; -d leaves the overlay as is. */
export async function commit(run: Runner, image: string, totalBytes: number): Promise<void> {
  await run(['qemu-img', 'commit', '-p', '-d', image], { timeoutMs: LONG_MS, copy: true, ...meter(totalBytes) });
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

/** Points the overlay's header (`image`: its spec alone) at another backing file without copying data (-u), as cinder's _rebase_img. */
export async function rebaseUnsafe(run: Runner, image: string, backingFile: string, backingFormat: ImageFormat): Promise<void> {
  await run(['qemu-img', 'rebase', '-q', '-u', '-b', backingFile, '-F', backingFormat, image]);
}

/**
 * Copies an image (flattening its chain) into an existing, empty image at least as large (-n: qemu-img
 * never creates or opens the target by a name on the share); `preallocate` writes every block (-S 0).
 */
export async function convert(
  run: Runner,
  src: string,
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
      '-O',
      dst.format,
      ...(preallocate ? ['-S', '0'] : []),
      src,
      dst.path,
    ],
    { timeoutMs: LONG_MS, copy: true, ...meter(totalBytes) },
  );
}

/** Grows an image (`image`: its spec alone) to `sizeGb`; `preallocate` allocates the new space (thick raw). */
export async function resize(run: Runner, image: string, sizeGb: number, preallocate: boolean): Promise<void> {
  await run(['qemu-img', 'resize', '-q', ...(preallocate ? ['--preallocation=falloc'] : []), image, `${sizeGb}G`]);
}

/** One extent of `qemu-img map --output=json`: `depth` is the chain layer (0 = top) whose file holds data at `offset`. */
export interface Extent {
  start: number;
  length: number;
  depth: number;
  zero: boolean;
  data: boolean;
  offset?: number;
}

/** Where an image's (`image`: its spec with its chain) data lies, and which ranges read as zeros. */
export async function map(run: Runner, image: string): Promise<Extent[]> {
  const { stdout } = await run(['qemu-img', 'map', '--output=json', image], { timeoutMs: LONG_MS });
  return JSON.parse(stdout) as Extent[];
}
