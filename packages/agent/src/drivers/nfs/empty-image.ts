import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { GIB } from '@kindling/protocol';
import type { Runner } from '../../exec/run.js';
import * as qemuImg from './qemu-img.js';
import type { ImageFormat } from './qemu-img.js';
import type { NewFile } from './safe-file.js';

/**
 * Empty volumes written into a file the agent made (safe-file.ts), each as the command cinder runs
 * would leave it, without a process where the bytes are known (issue 20: a process costs more than
 * the rest of a create):
 * - raw, sparse: what `qemu-img create -f raw` leaves: the size by ftruncate, and its first block
 *   written with zeros (qemu allocates it so that it can probe the alignment of direct I/O);
 * - raw, allocated: `fallocate` (cinder writes zeros with dd; Node has no fallocate call);
 * - qcow2: qemu-img's own empty image of that size, made once per size by `qemu-img create` into an
 *   unnamed file and then written through the descriptor: the same bytes, the zero blocks left as holes.
 */
export class EmptyImages {
  /** Per size in GiB, the newest few. */
  private readonly templates = new Map<number, Promise<Template>>();

  constructor(private readonly run: Runner) {}

  async write(target: NewFile, format: ImageFormat, sizeGb: number, sparse: boolean): Promise<void> {
    if (format === 'raw') {
      if (sparse) {
        await target.handle.truncate(sizeGb * GIB);
        await target.handle.write(Buffer.alloc(BLOCK), 0, BLOCK, 0);
      }
      else await this.run(['fallocate', '-l', `${sizeGb}G`, target.arg]);
      return;
    }
    const template = await this.template(sizeGb);
    for (const { at, bytes } of template.blocks) await target.handle.write(bytes, 0, bytes.length, at);
    await target.handle.truncate(template.length);
  }

  private template(sizeGb: number): Promise<Template> {
    const known = this.templates.get(sizeGb);
    if (known) return known;
    if (this.templates.size >= TEMPLATES_KEPT) this.templates.delete(this.templates.keys().next().value as number);
    const made = qcow2Template(this.run, sizeGb);
    this.templates.set(sizeGb, made);
    // A failed qemu-img is that create's error; the next create of the size tries again.
    made.catch(() => this.templates.get(sizeGb) === made && this.templates.delete(sizeGb));
    return made;
  }
}

/** An image's length and its blocks that are not all zeros. */
interface Template {
  length: number;
  blocks: { at: number; bytes: Buffer }[];
}

const TEMPLATES_KEPT = 16;
const BLOCK = 4096;

/** Linux's O_TMPFILE (with the O_DIRECTORY bits it includes); Node names no constant for it. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;

/**
 * Made in an unnamed file (O_TMPFILE) of the temp folder, reached by qemu-img through the agent's
 * descriptor: nobody can open it by a name (on the share anyone who can write the export could rewrite
 * it before the read, and every later volume of the size would carry that), and it is gone once closed,
 * even when the agent is killed half way.
 */
async function qcow2Template(run: Runner, sizeGb: number): Promise<Template> {
  const file = await open(tmpdir(), constants.O_RDWR | O_TMPFILE, 0o600);
  try {
    await qemuImg.create(run, `/proc/${process.pid}/fd/${file.fd}`, 'qcow2', `${sizeGb}G`);
    const image = await file.readFile();
    const blocks: Template['blocks'] = [];
    for (let at = 0; at < image.length; at += BLOCK) {
      const block = image.subarray(at, Math.min(at + BLOCK, image.length));
      if (block.some((byte) => byte !== 0)) blocks.push({ at, bytes: Buffer.from(block) });
    }
    return { length: image.length, blocks };
  } finally {
    await file.close();
  }
}
