import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BackendError, ConflictError, NotFoundError } from '@kindling/protocol';
import type { Runner } from '../../exec/run.js';
import { sizeOf } from './image-size.js';
import { readInfo, writeInfo, type SnapInfo } from './info-file.js';
import { infoFile, isChainFile, overlayFile, volumeFile } from './names.js';
import * as qemuImg from './qemu-img.js';
import type { ImageFormat } from './qemu-img.js';

/**
 * A volume's qcow2 chain, run as cinder's RemoteFSSnapDriver does offline:
 *
 *   volume-<id>  <-  volume-<id>.<snap-a>  <-  volume-<id>.<snap-b>   (active)
 *
 * Taking snapshot X adds an overlay over the active file and makes it active; X's data is that
 * overlay's backing file, frozen from then on. `volume-<id>.info` maps each snapshot to its overlay.
 */
export interface Chain {
  run: Runner;
  /** The share folder holding the volume's files. */
  dir: string;
  volumeId: string;
  /** Format of the base file `volume-<id>`; every overlay is qcow2. */
  baseFormat: ImageFormat;
}

export interface Image {
  file: string;
  path: string;
  format: ImageFormat;
}

const infoPath = (c: Chain): string => join(c.dir, infoFile(c.volumeId));

const image = (c: Chain, file: string, format: ImageFormat): Image => ({ file, path: join(c.dir, file), format });

const formatOf = (c: Chain, file: string): ImageFormat => (file === volumeFile(c.volumeId) ? c.baseFormat : 'qcow2');

/** The file the volume's data is read from and written to now. */
export async function activeImage(c: Chain): Promise<Image> {
  const info = await readInfo(infoPath(c), c.volumeId);
  const file = info?.active ?? volumeFile(c.volumeId);
  return image(c, file, formatOf(c, file));
}

/** The snapshot record and the overlay made for `snapshotId`, or null when no record names it. */
async function snapshotEntry(c: Chain, snapshotId: string): Promise<{ info: SnapInfo; overlay: string } | null> {
  const info = await readInfo(infoPath(c), c.volumeId);
  const overlay = snapshotId !== 'active' ? info?.[snapshotId] : undefined;
  return info && overlay ? { info, overlay } : null;
}

/** The backing file named in an overlay's header, checked to be one of this volume's files. */
async function backingOf(c: Chain, overlay: string): Promise<Image | null> {
  const top = await qemuImg.info(c.run, join(c.dir, overlay), 'qcow2');
  if (top.backingFile === null) return null;
  const format = top.backingFormat;
  if (!isChainFile(c.volumeId, top.backingFile) || (format !== 'raw' && format !== 'qcow2')) {
    throw new BackendError(`${overlay} has an unexpected backing file ${top.backingFile} (${String(format)})`, {
      file: overlay,
      backingFile: top.backingFile,
    });
  }
  return image(c, top.backingFile, format);
}

/** Adds the overlay for a new snapshot over the active file; returns the overlay's file name. */
export async function createSnapshot(c: Chain, snapshotId: string): Promise<string> {
  const info: SnapInfo = (await readInfo(infoPath(c), c.volumeId)) ?? { active: volumeFile(c.volumeId) };
  const already = info[snapshotId];
  if (already !== undefined) return already;
  const backing = info.active;
  const overlay = overlayFile(c.volumeId, snapshotId);
  // The backing file is named relative to the overlay, so the share may be mounted anywhere.
  await qemuImg.create(c.run, join(c.dir, overlay), 'qcow2', { backing: { file: backing, format: formatOf(c, backing) } });
  await writeInfo(infoPath(c), { ...info, active: overlay, [snapshotId]: overlay });
  return overlay;
}

/**
 * cinder's offline _delete_snapshot: the snapshot's overlay is committed into its backing file
 * (which then holds what the overlay showed) and removed; the file above it, if any, is re-pointed
 * at that backing file. Deleting a snapshot with no record is a no-op.
 */
export async function deleteSnapshot(c: Chain, snapshotId: string): Promise<void> {
  const entry = await snapshotEntry(c, snapshotId);
  if (!entry) return;
  const { info, overlay } = entry;
  const next: SnapInfo = { ...info };
  delete next[snapshotId];
  const base = await backingOf(c, overlay);
  if (base === null) {
    // A stale record (cinder's _delete_stale_snapshot): nothing to merge; keep the file if it is in use.
    await writeInfo(infoPath(c), next);
    if (overlay !== info.active) await rm(join(c.dir, overlay), { force: true });
    return;
  }
  if (overlay === info.active) {
    await qemuImg.commit(c.run, join(c.dir, overlay));
    next.active = base.file;
  } else {
    const chain = await qemuImg.backingChain(c.run, join(c.dir, info.active), 'qcow2');
    const higher = chain.find((i) => i.backingFile === overlay);
    const higherFile = higher ? higher.filename.slice(higher.filename.lastIndexOf('/') + 1) : undefined;
    if (!higherFile || !Object.entries(info).some(([k, v]) => k !== 'active' && v === higherFile)) {
      throw new BackendError(`no snapshot file of volume ${c.volumeId} has ${overlay} as its backing file`, {
        file: overlay,
      });
    }
    await qemuImg.commit(c.run, join(c.dir, overlay));
    await qemuImg.rebaseUnsafe(c.run, join(c.dir, higherFile), base.file, base.format);
  }
  // Record first, remove after: a crash in between leaves an unused file, never a dangling record.
  await writeInfo(infoPath(c), next);
  await rm(join(c.dir, overlay));
}

/** The image holding the snapshot's data: the backing file of the overlay made when it was taken. */
export async function snapshotImage(c: Chain, snapshotId: string): Promise<Image> {
  const entry = await snapshotEntry(c, snapshotId);
  const base = entry ? await backingOf(c, entry.overlay) : null;
  if (!base) throw new NotFoundError(`snapshot ${snapshotId} of volume ${c.volumeId} is not on the share`, { snapshotId });
  return base;
}

/**
 * cinder's RevertToSnapshotMixin: only the latest snapshot (whose overlay is the active file) can be
 * reverted to; the active overlay is replaced by an empty one over the same backing file, so reads
 * show the snapshot's data. The volume keeps its current size.
 */
export async function revertToSnapshot(c: Chain, snapshotId: string): Promise<void> {
  const entry = await snapshotEntry(c, snapshotId);
  if (!entry) throw new NotFoundError(`snapshot ${snapshotId} of volume ${c.volumeId} is not on the share`, { snapshotId });
  if (entry.overlay !== entry.info.active) {
    throw new ConflictError(`snapshot ${snapshotId} is not the latest snapshot of volume ${c.volumeId}`, {
      snapshotId,
      activeFile: entry.info.active,
    });
  }
  const base = await backingOf(c, entry.overlay);
  if (!base) throw new BackendError(`${entry.overlay} has no backing file to revert to`, { file: entry.overlay });
  const activePath = join(c.dir, entry.overlay);
  const virtualSize = await sizeOf(c.run, activePath, 'qcow2');
  // Built aside and renamed over the active file, so a failure leaves the volume as it was.
  const fresh = `${activePath}.revert`;
  try {
    await qemuImg.create(c.run, fresh, 'qcow2', {
      backing: { file: base.file, format: base.format },
      size: virtualSize,
    });
    await rename(fresh, activePath);
  } finally {
    await rm(fresh, { force: true });
  }
}
