import { readdir, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ConflictError, NotFoundError } from '@kindling/protocol';
import type { Runner } from '../../exec/run.js';
import { syncDir } from './durable.js';
import { fault } from './faults.js';
import { headerOf } from './image-header.js';
import { readInfo, writeInfo, type SnapInfo } from './info-file.js';
import { claimFile, infoFile, isChainFile, overlayFile, parseName, revertFile, volumeFile } from './names.js';
import * as qemuImg from './qemu-img.js';
import type { ImageFormat } from './qemu-img.js';
import { expectHolds, openRegular, publishNew, refusal, withNewFile } from './safe-file.js';
import { commitServed, servedBy, switchServed, type Served } from './served.js';

/**
 * A volume's qcow2 chain, run as cinder's RemoteFSSnapDriver does offline:
 *
 *   volume-<id>  <-  volume-<id>.<snap-a>  <-  volume-<id>.<snap-b>   (active)
 *
 * Taking snapshot X adds an overlay over the active file and makes it active; X's data is that
 * overlay's backing file, frozen from then on. `volume-<id>.info` maps each snapshot to its overlay.
 * Every step is resumable or leaves a leftover scan recognises (recovery.md).
 */
export interface Chain {
  run: Runner;
  /** The share folder holding the volume's files. */
  dir: string;
  volumeId: string;
  /** Format of the base file `volume-<id>`; every overlay is qcow2. */
  baseFormat: ImageFormat;
  /** This agent's owner tag (names.ts): its temporary names carry it. */
  owner: string;
}

export interface Image {
  file: string;
  path: string;
  format: ImageFormat;
  virtualSize: number;
}

/**
 * An image of a chain held open (withChain): commands reach it only through the descriptors it was
 * checked through, as qemu's `json:` description (qemu-img.ts), never by a name on the share.
 */
export interface HeldImage extends Image {
  /** The agent's descriptor of this file as a path (`/proc/<agent pid>/fd/<n>`). */
  arg: string;
  /** This image and the chain below it. */
  chain: string;
  /** This image alone (no backing file opened): for commands that change only its own header or size. */
  alone: string;
}

const infoPath = (c: Chain): string => join(c.dir, infoFile(c.volumeId));

export const readRecord = (c: Chain): Promise<SnapInfo | null> => readInfo(infoPath(c), c.volumeId);

const writeRecord = (c: Chain, info: SnapInfo): Promise<void> => writeInfo(c.dir, c.volumeId, c.owner, info);

/**
 * Runs `work` while this agent claims `overlay` (names.ts, claimFile): an overlay outside the record
 * is removed only by its claim's owner. The claim is flushed before `work` starts and removed once it
 * is done; a failed `work` leaves it, so the next start's scan knows whose the overlay is.
 */
async function claimed<T>(c: Chain, overlay: string, work: () => Promise<T>): Promise<T> {
  const claim = claimFile(overlay, c.owner);
  await withNewFile(c.dir, claim, () => syncDir(c.dir));
  const out = await work();
  await rm(join(c.dir, claim), { force: true });
  return out;
}

/** This agent's claims on `overlay` (claims of other agents are theirs to remove). */
export async function claimsOf(c: Chain, overlay: string): Promise<string[]> {
  return (await readdir(c.dir)).filter((name) => {
    const parsed = parseName(name);
    return parsed?.kind === 'claim' && parsed.owner === c.owner && name.startsWith(`${overlay}.claim-`);
  });
}

const formatOf = (c: Chain, file: string): ImageFormat => (file === volumeFile(c.volumeId) ? c.baseFormat : 'qcow2');

/**
 * The chain from `top` down to the base, top first, each file checked before any command opens it:
 * a regular file of this volume (safe-file.ts), each backing file one of the volume's own files in
 * the format the chain says, ending at the base, which has no backing file. A file a guest or a
 * share writer crafted is refused, never followed. With `baseFromHeader` (scan, leftovers: no
 * record at hand), the base's format is the one the overlay above it declares.
 */
async function walkOpen(c: Chain, top: string, baseFromHeader: boolean, handles: FileHandle[]): Promise<HeldImage[]> {
  const base = volumeFile(c.volumeId);
  const images: (Image & { arg: string })[] = [];
  for (let file = top, format = formatOf(c, top); ; ) {
    const path = join(c.dir, file);
    if (images.some((i) => i.file === file)) throw refusal(path, 'unexpected-backing-file', 'the backing chain loops');
    const handle = await openRegular(path);
    handles.push(handle);
    const header = await headerOf(path, handle, format);
    images.push({ file, path, format, virtualSize: header.virtualSize, arg: `/proc/${process.pid}/fd/${handle.fd}` });
    const backing = header.backingFile;
    if (backing === null) {
      if (file === base) return images.map((image, at) => ({ ...image, chain: qemuImg.spec(images.slice(at)), alone: qemuImg.spec([image]) }));
      throw refusal(path, 'unexpected-backing-file', `overlay of volume ${c.volumeId} has no backing file`);
    }
    if (file === base) throw refusal(path, 'base-has-backing-file', `the base image has a backing file ${backing}`, { backingFile: backing });
    if (!isChainFile(c.volumeId, backing)) {
      throw refusal(path, 'unexpected-backing-file', `its backing file ${backing} is not a file of volume ${c.volumeId}`, {
        backingFile: backing,
      });
    }
    const declared = header.backingFormat;
    const expected = backing === base && baseFromHeader && (declared === 'raw' || declared === 'qcow2') ? declared : formatOf(c, backing);
    if (declared !== expected) {
      throw refusal(path, 'unexpected-backing-file', `its backing file ${backing} is declared ${String(declared)}, not ${expected}`, {
        backingFile: backing,
      });
    }
    file = backing;
    format = expected;
  }
}

/**
 * Runs `use` on the chain from `top` down to the base, top first, each file checked as it is opened:
 * a regular file of this volume (safe-file.ts), each backing file one of the volume's own files in
 * the format the chain says, ending at the base, which has no backing file. A file a guest or a
 * share writer crafted is refused, never followed. The files stay open until `use` returns, and
 * commands reach them through those descriptors: a name swapped after the check is never opened.
 * With `baseFromHeader` (scan, leftovers: no record at hand), the base's format is the one the
 * overlay above it declares.
 */
export async function withChain<T>(c: Chain, top: string, use: (images: HeldImage[]) => Promise<T>, baseFromHeader = false): Promise<T> {
  const handles: FileHandle[] = [];
  try {
    return await use(await walkOpen(c, top, baseFromHeader, handles));
  } finally {
    for (const handle of handles) await handle.close();
  }
}

/** The checked chain from `top` (withChain), for what only reads headers. */
export const walk = (c: Chain, top: string, baseFromHeader = false): Promise<Image[]> =>
  withChain(c, top, async (images) => images.map(({ file, path, format, virtualSize }) => ({ file, path, format, virtualSize })), baseFromHeader);

/** Runs `use` on the chain from the file the volume's data is read from and written to now, held open. */
export async function withActive<T>(c: Chain, use: (images: HeldImage[]) => Promise<T>): Promise<T> {
  const info = await readRecord(c);
  return withChain(c, info?.active ?? volumeFile(c.volumeId), use);
}

/** The chain from the file the volume's data is read from and written to now, top first. */
export async function activeChain(c: Chain): Promise<Image[]> {
  const info = await readRecord(c);
  return walk(c, info?.active ?? volumeFile(c.volumeId));
}

/** The snapshot record and the overlay made for `snapshotId`, or null when no record names it. */
async function snapshotEntry(c: Chain, snapshotId: string): Promise<{ info: SnapInfo; overlay: string } | null> {
  const info = await readRecord(c);
  const overlay = snapshotId !== 'active' ? info?.[snapshotId] : undefined;
  return info && overlay ? { info, overlay } : null;
}

/** The image under `overlay` in a verified chain: the snapshot's point-in-time data. */
function below<I extends Image>(images: I[], overlay: string, volumeId: string): I | null {
  const at = images.findIndex((i) => i.file === overlay);
  if (at === -1) return null;
  const under = images[at + 1];
  if (!under) throw refusal(images[at]!.path, 'unexpected-backing-file', `a snapshot record of volume ${volumeId} names its base`);
  return under;
}

/**
 * Adds the overlay for a new snapshot over the active file; returns the overlay's file name. The
 * overlay is flushed before the record names it: a crash in between leaves an orphan overlay, claimed
 * by this agent, so its own restart (and no other agent's) removes it.
 *
 * A volume that qemu-storage-daemon serves (`served`: attached, its writes going on) is snapshotted
 * live: once the overlay is flushed, the daemon switches its writes to it (served.ts), and only then
 * does the record name it. A crash between the switch and the record leaves the daemon writing to a
 * claimed overlay no record names: settleServed records it (scan does, at the next start).
 */
export async function createSnapshot(c: Chain, snapshotId: string, live: Live | null = null): Promise<string> {
  let info: SnapInfo = (await readRecord(c)) ?? { active: volumeFile(c.volumeId) };
  const already = info[snapshotId];
  if (already !== undefined) return already;
  if (live) info = await settleServed(c, live.served, info);
  const [active] = await walk(c, info.active);
  const overlay = overlayFile(c.volumeId, snapshotId);
  // An orphan of an earlier attempt (the volume is locked: no other call makes it now), or a planted name.
  await rm(join(c.dir, overlay), { force: true });
  await claimed(c, overlay, async () => {
    await withNewFile(c.dir, overlay, async (file) => {
      // The backing file is named relative to the overlay, so the share may be mounted anywhere.
      await qemuImg.create(c.run, file.arg, 'qcow2', active!.virtualSize, { file: info.active, format: active!.format });
      await file.handle.sync();
      await syncDir(c.dir);
      // The record must not name a link someone swapped in for the overlay.
      await expectHolds(file);
      await fault('snapshot-create:overlay-made');
      if (live) {
        const release = await live.hold();
        try {
          await switchServed(live.served, file, snapshotId);
        } finally {
          await release();
        }
        await fault('snapshot-create:switched');
      }
    });
    await writeRecord(c, { ...info, active: overlay, [snapshotId]: overlay });
    await fault('snapshot-create:recorded');
  });
  return overlay;
}

/** A volume in use that qemu-storage-daemon serves, snapshotted live. */
export interface Live {
  served: Served;
  /** Holds the volume's writes for the switch (its filesystem frozen); returns their release. */
  hold(): Promise<() => Promise<void>>;
}

/**
 * A daemon serving the volume is the truth about where its writes go. When it serves a file the
 * record does not name active, that is a live snapshot cut between its switch and its record: the
 * top is then an overlay of this volume that this agent claimed, over the record's active file, and
 * is recorded now (as the snapshot its name says; the claim goes as a leftover). Any other
 * disagreement is refused: nothing is written over a chain the record and the daemon disagree on.
 * Returns the record as it now stands.
 */
export async function settleServed(c: Chain, served: Served, info: SnapInfo): Promise<SnapInfo> {
  const top = basename(served.top);
  if (resolve(dirname(served.top)) === resolve(c.dir) && top === info.active) return info;
  const parsed = parseName(top);
  if (resolve(dirname(served.top)) === resolve(c.dir) && parsed?.kind === 'overlay' && parsed.volumeId === c.volumeId && (await claimsOf(c, top)).length > 0) {
    const [, under] = await walk(c, top, true);
    if (under?.file === info.active) {
      const next: SnapInfo = { ...info, active: top, [parsed.snapshotId]: top };
      await writeRecord(c, next);
      return next;
    }
  }
  throw new ConflictError(`qemu-storage-daemon (pid ${served.pid}) writes volume ${c.volumeId} to ${served.top}, but its record names ${info.active} active`, {
    id: c.volumeId,
    served: served.top,
    activeFile: info.active,
  });
}

/**
 * cinder's offline _delete_snapshot: the snapshot's overlay is committed into its backing file
 * (which then holds what the overlay showed) and removed; the file above it, if any, is re-pointed
 * at that backing file. Resumable: commit is repeatable, and an overlay the chain no longer passes
 * through was already committed and re-pointed around, so only the record and the file are left to
 * do. Deleting a snapshot with no record is a no-op.
 */
export async function deleteSnapshot(c: Chain, snapshotId: string, served: Served | null = null): Promise<void> {
  let entry = await snapshotEntry(c, snapshotId);
  if (entry && served) {
    await settleServed(c, served, entry.info);
    entry = await snapshotEntry(c, snapshotId);
  }
  if (!entry) return;
  const { info, overlay } = entry;
  if (served && overlay === info.active) {
    // Its overlay is the file the daemon writes to: committing that is a mirror job on the export's
    // node, which qemu 7.2 refuses beside a writable FUSE export (both want the node's resize permission).
    throw new ConflictError(
      `snapshot ${snapshotId} is the latest snapshot of volume ${c.volumeId}, which is in use: it can be deleted once the volume is detached, or once a newer snapshot exists`,
      { snapshotId, id: c.volumeId, status: 'in-use' },
    );
  }
  const next: SnapInfo = { ...info };
  delete next[snapshotId];
  await withChain(c, info.active, async (images) => {
    const base = below(images, overlay, c.volumeId);
    if (base === null) return;
    const at = images.findIndex((i) => i.file === overlay);
    if (served) await commitServed(served, images[at]!, base, images[at - 1]!, snapshotId);
    else await qemuImg.commit(c.run, images[at]!.chain, images[at]!.virtualSize);
    if (overlay === info.active) next.active = base.file;
    else if (!served) await qemuImg.rebaseUnsafe(c.run, images[at - 1]!.alone, base.file, base.format);
  });
  await fault('snapshot-delete:committed');
  // Record first, remove after: a crash in between leaves an orphan overlay (claimed, so this agent's
  // to remove), never a dangling record.
  await claimed(c, overlay, async () => {
    await writeRecord(c, next);
    await fault('snapshot-delete:recorded');
    await rm(join(c.dir, overlay), { force: true });
  });
}

/** Runs `use` on the image holding the snapshot's data (the backing file of its overlay), held open down to the base. */
export async function withSnapshotImage<T>(c: Chain, snapshotId: string, use: (image: HeldImage) => Promise<T>): Promise<T> {
  const entry = await snapshotEntry(c, snapshotId);
  const missing = () => new NotFoundError(`snapshot ${snapshotId} of volume ${c.volumeId} is not on the share`, { snapshotId });
  if (!entry) throw missing();
  return withChain(c, entry.info.active, async (images) => {
    const image = below(images, entry.overlay, c.volumeId);
    if (!image) throw missing();
    return use(image);
  });
}

/**
 * cinder's RevertToSnapshotMixin: only the latest snapshot (whose overlay is the active file) can be
 * reverted to; the active overlay is replaced by an empty one over the same backing file, so reads
 * show the snapshot's data. The volume keeps its current size. The new overlay is built aside and
 * renamed over the active file: called again after a crash at any step, it finishes.
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
  const images = await walk(c, entry.overlay);
  const base = below(images, entry.overlay, c.volumeId)!;
  await withNewFile(c.dir, revertFile(entry.overlay, c.owner), async (file) => {
    try {
      await qemuImg.create(c.run, file.arg, 'qcow2', images[0]!.virtualSize, { file: base.file, format: base.format });
      await publishNew(file, entry.overlay);
    } finally {
      await rm(file.path, { force: true });
    }
  });
}

/**
 * Removes an overlay no record names and the chain does not pass through (a snapshot create or
 * delete that died between its file and its record), with this agent's claims on it. Refused when it
 * is in use after all, or when this agent never claimed it (another agent's snapshot in progress).
 */
export async function removeOrphanOverlay(c: Chain, overlay: string): Promise<void> {
  const info = await readRecord(c);
  const named = Object.values(info ?? {}).includes(overlay);
  const inChain = (await walk(c, info?.active ?? volumeFile(c.volumeId))).some((i) => i.file === overlay);
  // A daemon that has it open (a live snapshot's switch its record missed) writes to it: never removed.
  const served = (await servedBy(c.dir, c.volumeId))?.files.some((f) => resolve(f) === resolve(c.dir, overlay));
  if (named || inChain || served) {
    throw new ConflictError(`${overlay} is part of volume ${c.volumeId}'s chain, not a leftover`, { file: overlay });
  }
  const claims = await claimsOf(c, overlay);
  if (claims.length === 0) throw new ConflictError(`${overlay} is not claimed by this agent, not its leftover`, { file: overlay });
  await rm(join(c.dir, overlay), { force: true });
  for (const claim of claims) await rm(join(c.dir, claim), { force: true });
}

/**
 * The base file's format as the share says (scan and leftovers have no record at hand): declared by
 * the overlay over the base, else `fallback` (the backend's format) when the base is the active file.
 */
export async function baseFormatOnShare(c: Chain): Promise<ImageFormat> {
  const info = await readRecord(c);
  if (!info || info.active === volumeFile(c.volumeId)) return c.baseFormat;
  return (await walk(c, info.active, true)).at(-1)!.format;
}

/**
 * A volume's files, in the order a delete removes them (recovery.md), from its record: one read, not
 * a listing of the share, so a delete costs the same beside 10 or 100,000 volumes. The share's names
 * are read only when the record is unreadable, or gone while `activeFile` (the index's location) is an
 * overlay: a delete cut after its first step, whose overlays no record names any more.
 */
export async function filesToDelete(c: Chain, activeFile: unknown): Promise<string[]> {
  const base = volumeFile(c.volumeId);
  const record = infoFile(c.volumeId);
  // undefined: a record is there but unreadable (null: the volume has none).
  const info = await readRecord(c).catch(() => undefined);
  const cut = info === null && typeof activeFile === 'string' && activeFile !== base;
  const names =
    info === undefined || cut
      ? (await readdir(c.dir)).filter((n) => {
          const parsed = parseName(n);
          return parsed !== null && parsed.kind !== 'probe' && parsed.volumeId === c.volumeId;
        })
      : Object.values(info ?? {});
  return [record, ...new Set(names.filter((n) => n !== base && n !== record)), base];
}
