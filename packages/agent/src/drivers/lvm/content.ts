import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { BackendError, GIB, type Location } from '@kindling/protocol';
import type { ContentReader, ContentSink, SnapshotRef, VolumeRef } from '../driver.js';
import type { Clearer } from './clear.js';
import type { Copier } from './copy.js';
import { cloneSnapshotLv, cloneSnapshotTags, snapshotLv, volumeLv } from './names.js';
import type { LvSteps } from './steps.js';

/** Zeros written at once into a thick volume's gaps. */
const ZERO_PIECE = 1024 * 1024;
const zeros = Buffer.alloc(ZERO_PIECE);

async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new BackendError(`the device ended at ${position + done}, before the ${into.length} bytes asked at ${position}`);
    done += bytesRead;
  }
}

async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    done += (await handle.write(data, done, data.length - done, position + done)).bytesWritten;
  }
}

async function writeZeros(handle: FileHandle, from: number, to: number): Promise<void> {
  for (let at = from; at < to; at += ZERO_PIECE) await writeFully(handle, zeros.subarray(0, Math.min(ZERO_PIECE, to - at)), at);
}

/**
 * Runs `use` with a reader of an active LV's device: one range, the whole device. Zero blocks are
 * skipped by the sender, which compares each piece with zeros (a thin LV's unmapped blocks read as
 * zeros; asking thin_dump for its mapped ranges would need the pool's metadata snapshot).
 */
async function readDevice<T>(device: string, sizeBytes: number, use: (reader: ContentReader) => Promise<T>): Promise<T> {
  const handle = await open(device, constants.O_RDONLY);
  try {
    return await use({
      sizeBytes,
      async *ranges() {
        yield { offset: 0, length: sizeBytes };
      },
      read: (offset, into) => readFully(handle, into, offset),
    });
  } finally {
    await handle.close();
  }
}

/**
 * An LVM volume's content for a copy to another agent (transfer/), and new volumes filled from one.
 * Steps and crash rules: recovery.md, "Copy to or from another agent".
 */
export class LvmContent {
  constructor(
    private readonly steps: LvSteps,
    private readonly clearer: Clearer,
    private readonly copier: Copier,
  ) {}

  /**
   * A live volume is read through a temporary snapshot (`clone-snap-<random id>`, a thick one as big
   * as the volume so it cannot fill during the copy), removed afterwards (zeroed as the rule says),
   * also when the read fails; after a crash scan finds it as the volume's `temp-snapshot` leftover.
   */
  async readVolume<T>(volume: VolumeRef, thin: boolean, use: (reader: ContentReader) => Promise<T>): Promise<T> {
    const { steps } = this;
    const tempId = randomUUID();
    const temp = cloneSnapshotLv(tempId);
    try {
      const device = await steps.cache.locked(async (w) => {
        await steps.snapshotLocked(w, temp, volumeLv(volume.id), cloneSnapshotTags(tempId), thin, volume.size);
        return steps.activateLocked(temp, false);
      });
      return await readDevice(device, volume.size * GIB, use);
    } finally {
      await this.clearer.cleanUp(temp);
    }
  }

  /** A snapshot is still already (the service holds it and its volume): read from its own device. */
  async readSnapshot<T>(snapshot: SnapshotRef, use: (reader: ContentReader) => Promise<T>): Promise<T> {
    const device = await this.steps.cache.locked(() => this.steps.activateLocked(snapshotLv(snapshot.id), false));
    return readDevice(device, snapshot.volumeSize * GIB, use);
  }

  /**
   * A new volume under its partial name, written through its device, flushed (fdatasync), renamed.
   * A thin LV reads zeros where nothing was written, so only data is written; a thick LV's extents may
   * hold anything (`volumeClear: none`, or data from before Kindling), so every gap between the
   * received ranges, and the tail, is written with zeros too. Writes arrive in ascending order.
   */
  writeVolume(volume: VolumeRef, thin: boolean, fill: (sink: ContentSink) => Promise<void>): Promise<Location> {
    return this.copier.build(volume, thin, async () => undefined, async (device) => {
      const handle = await open(device, constants.O_WRONLY);
      try {
        let covered = 0;
        await fill({
          async write(offset, data) {
            const gap = covered;
            covered = Math.max(covered, offset + data.length);
            if (!thin && gap < offset) await writeZeros(handle, gap, offset);
            await writeFully(handle, data, offset);
          },
        });
        if (!thin) await writeZeros(handle, covered, volume.size * GIB);
        await handle.datasync();
      } finally {
        await handle.close();
      }
    });
  }
}
