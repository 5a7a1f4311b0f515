import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { BackendError } from '@kindling/protocol';
import { isChainFile } from './names.js';

/**
 * cinder's `volume-<id>.info`: `{ "active": <active file>, "<snapshot-id>": <overlay made for it> }`.
 * A snapshot's data is the overlay's backing file, the state when the snapshot was taken.
 */
export type SnapInfo = { active: string } & Record<string, string>;

/** The record, or null when the volume never had a snapshot (no file). */
export async function readInfo(path: string, volumeId: string): Promise<SnapInfo | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BackendError(`${path} is not valid JSON`, { path });
  }
  // Names in the record become paths: accept only this volume's own chain files.
  const entries = parsed && typeof parsed === 'object' ? Object.entries(parsed) : [];
  const valid = entries.every(([, v]) => typeof v === 'string' && isChainFile(volumeId, v));
  if (!valid || typeof (parsed as Record<string, unknown>).active !== 'string') {
    throw new BackendError(`${path} is not a snapshot record of volume ${volumeId}`, { path });
  }
  return parsed as SnapInfo;
}

/** Writes as cinder does (sorted keys, indent 1), through a temporary file so a crash leaves the old record. */
export async function writeInfo(path: string, info: SnapInfo): Promise<void> {
  const text = JSON.stringify(info, Object.keys(info).sort(), 1);
  const tmp = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, text, { flush: true });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
