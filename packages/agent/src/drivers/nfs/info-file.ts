import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BackendError } from '@kindling/protocol';
import { syncDir } from './durable.js';
import { infoFile, infoTempFile, isChainFile } from './names.js';
import { openRegular, refusal } from './safe-file.js';

/**
 * cinder's `volume-<id>.info`: `{ "active": <active file>, "<snapshot-id>": <overlay made for it> }`.
 * A snapshot's data is the overlay's backing file, the state when the snapshot was taken.
 */
export type SnapInfo = { active: string } & Record<string, string>;

// A record of a few hundred snapshots is a few tens of KiB; anything far larger is not ours.
const MAX_BYTES = 1024 * 1024;

async function readText(path: string): Promise<string | null> {
  let file;
  try {
    file = await openRegular(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const { size } = await file.stat();
    if (size > MAX_BYTES) throw refusal(path, 'too-large', `it is ${size} bytes, not a snapshot record`);
    return await file.readFile('utf8');
  } finally {
    await file.close();
  }
}

/** The record, or null when the volume never had a snapshot (no file). */
export async function readInfo(path: string, volumeId: string): Promise<SnapInfo | null> {
  const text = await readText(path);
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BackendError(`${path} is not valid JSON`, { path });
  }
  // Names in the record become paths: accept only this volume's own chain files.
  const entries = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? Object.entries(parsed) : [];
  const valid = entries.every(([, v]) => typeof v === 'string' && isChainFile(volumeId, v));
  if (!valid || typeof (parsed as Record<string, unknown>).active !== 'string') {
    throw new BackendError(`${path} is not a snapshot record of volume ${volumeId}`, { path });
  }
  return parsed as SnapInfo;
}

/**
 * Writes volume `volumeId`'s record in `dir` as cinder does (sorted keys, indent 1), through a flushed
 * temporary file of `owner`'s renamed over the record, so a crash leaves the old record or the new
 * one, never a mix.
 */
export async function writeInfo(dir: string, volumeId: string, owner: string, info: SnapInfo): Promise<void> {
  const text = JSON.stringify(info, Object.keys(info).sort(), 1);
  const tmp = join(dir, infoTempFile(volumeId, owner));
  try {
    // 'wx': never through a name someone planted (a symlink included).
    await writeFile(tmp, text, { flush: true, flag: 'wx' });
    await rename(tmp, join(dir, infoFile(volumeId)));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}
