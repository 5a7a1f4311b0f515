import { constants } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { BackendError, GIB } from '@kindling/protocol';
import type { Runner } from '../../exec/run.js';
import type { ContentReader, ContentSink } from '../driver.js';
import type { HeldImage } from './chain.js';
import { partFile } from './names.js';
import * as qemuImg from './qemu-img.js';
import { withNewFile, type NewFile } from './safe-file.js';

/**
 * An NFS volume's content for a copy to another agent (transfer/). Reads follow `qemu-img map` of the
 * held chain: each data extent is read straight from the layer's file (through the descriptor the chain
 * was checked through) at its host offset, so qcow2 holes and raw sparse holes are never read or sent.
 * Kindling's qcow2 images are never compressed or encrypted: a data extent without a host offset is refused.
 */

interface SpecNode {
  file: { filename: string };
  backing?: SpecNode | null;
}

/** The held chain's files, top first, as its `json:` spec names them (qemu-img.ts spec()). */
function layersOf(spec: string): string[] {
  const files: string[] = [];
  for (let node: SpecNode | null | undefined = JSON.parse(spec.slice('json:'.length)) as SpecNode; node; node = node.backing) {
    files.push(node.file.filename);
  }
  return files;
}

async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    // Past a layer's end qcow2 reads zeros (a grown overlay over a smaller base).
    if (bytesRead === 0) {
      into.fill(0, done);
      return;
    }
    done += bytesRead;
  }
}

/** Runs `use` with a reader of a held image's logical content; the layers' descriptors close after it. */
export async function readHeld<T>(run: Runner, image: HeldImage, use: (reader: ContentReader) => Promise<T>): Promise<T> {
  const extents = (await qemuImg.map(run, image.chain)).filter((e) => e.data && !e.zero);
  const unreadable = extents.find((e) => e.offset === undefined);
  if (unreadable) {
    throw new BackendError(`${image.file} has data at ${unreadable.start} that is not stored plainly (compressed?)`, { storageChanged: false });
  }
  const files = layersOf(image.chain);
  // Opened once per layer, the first time it is read (reads may overlap: the promise is what is kept).
  const handles = new Map<number, Promise<FileHandle>>();
  const layer = (depth: number): Promise<FileHandle> => {
    let handle = handles.get(depth);
    if (!handle) {
      // The descriptor path reaches the file the chain checked, whatever its name on the share is now.
      handle = open(files[depth]!, constants.O_RDONLY);
      handles.set(depth, handle);
    }
    return handle;
  };
  const extentAt = (offset: number): qemuImg.Extent => {
    let lo = 0;
    let hi = extents.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (extents[mid]!.start <= offset) lo = mid;
      else hi = mid - 1;
    }
    return extents[lo]!;
  };
  const reader: ContentReader = {
    sizeBytes: image.virtualSize,
    async *ranges() {
      for (const e of extents) yield { offset: e.start, length: e.length };
    },
    async read(offset, into) {
      const e = extentAt(offset);
      await readFully(await layer(e.depth), into, e.offset! + (offset - e.start));
    },
  };
  try {
    return await use(reader);
  } finally {
    for (const handle of handles.values()) await (await handle.catch(() => null))?.close();
  }
}

const sinkOf = (handle: FileHandle): ContentSink => ({
  async write(offset, data) {
    for (let done = 0; done < data.length; ) {
      done += (await handle.write(data, done, data.length - done, offset + done)).bytesWritten;
    }
  },
});

export interface WriteTarget {
  run: Runner;
  volumeId: string;
  owner: string;
  sizeGb: number;
  sizeBytes: number;
  /** Makes the empty volume in the backend's format (the driver's createEmpty). */
  createEmpty: (part: NewFile) => Promise<void>;
  format: qemuImg.ImageFormat;
}

/**
 * Fills a new volume's temporary file from a copy. Raw: written in place, holes left as holes. qcow2:
 * the data lands in a sparse raw staging file (another temporary name of the same volume, so recovery
 * removes it too) and is converted into the part, which qemu-img writes as qcow2 without the holes.
 */
export async function writePart(part: NewFile, t: WriteTarget, fill: (sink: ContentSink) => Promise<void>): Promise<void> {
  if (t.format === 'raw') {
    await t.createEmpty(part);
    await fill(sinkOf(part.handle));
    return;
  }
  await withNewFile(part.dir, partFile(t.volumeId, t.owner), async (staging) => {
    try {
      await staging.handle.truncate(t.sizeGb * GIB);
      await fill(sinkOf(staging.handle));
      await t.createEmpty(part);
      await qemuImg.convert(t.run, qemuImg.spec([{ format: 'raw', arg: staging.arg }]), { path: part.arg, format: 'qcow2' }, false, t.sizeBytes);
    } finally {
      await rm(staging.path, { force: true });
    }
  });
}
