import { GIB } from '@kindling/protocol';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';

const exec = promisify(execFile);

/** Statuses a restart must never leave behind. */
const TRANSIENT = new Set(['creating', 'deleting', 'extending', 'reverting']);
/** Statuses whose storage must be there, whole. */
const SETTLED = new Set(['available', 'in-use']);

/** What an NFS share holds against the index, for crash tests and the soak. Each entry says what and why. */
export interface ShareAudit {
  /** Records in a transient status. */
  transient: string[];
  /** Settled records whose storage is missing, the wrong size, or not in the `.info` chain. */
  broken: string[];
  /**
   * Files on the share that no record accounts for (a partial copy, a temporary overlay, a stray `.tmp`),
   * and `.info` entries that name no snapshot record (`volume-<id>.info: <key> -> <file>`).
   */
  leftovers: string[];
}

type Info = Record<string, string>;

async function readJson(path: string): Promise<Info | null> {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as Info;
  } catch {
    return null;
  }
}

/** The virtual size of an image, read with qemu-img (-U: the agent may hold it open). */
export async function virtualSize(path: string, format: string): Promise<number | null> {
  try {
    const { stdout } = await exec('qemu-img', ['info', '--output=json', '-U', '-f', format, path]);
    return (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
  } catch {
    return null;
  }
}

/**
 * Compares one share folder with the records of the volumes on it: every settled volume's files are
 * there at its size, every settled snapshot is in its volume's `.info` chain, and every file on the
 * share belongs to a record (its base file, `.info`, or an overlay that `.info` names for a snapshot).
 */
export async function auditNfsShare(
  shareDir: string,
  volumes: readonly VolumeRecord[],
  snapshots: readonly SnapshotRecord[],
): Promise<ShareAudit> {
  const audit: ShareAudit = { transient: [], broken: [], leftovers: [] };
  const files = new Set(await readdir(shareDir));
  const accounted = new Set<string>();
  for (const record of [...volumes, ...snapshots]) {
    if (TRANSIENT.has(record.status)) audit.transient.push(`${'volumeId' in record ? 'snapshot' : 'volume'} ${record.id} is ${record.status}`);
  }
  for (const volume of volumes) {
    const base = `volume-${volume.id}`;
    const info = await readJson(join(shareDir, `${base}.info`));
    const snaps = snapshots.filter((s) => s.volumeId === volume.id);
    accounted.add(base);
    if (info) accounted.add(`${base}.info`);
    for (const [key, file] of Object.entries(info ?? {})) {
      if (key === 'active' || snaps.some((s) => s.id === key)) accounted.add(file);
      // A chain entry no snapshot record stands for: a clone's temporary snapshot, a snapshot the index lost.
      else audit.leftovers.push(`${base}.info: ${key} -> ${file}`);
    }
    if (!SETTLED.has(volume.status)) continue;
    const active = info?.active ?? base;
    const format = active === base ? String(volume.location.format ?? 'qcow2') : 'qcow2';
    if (!files.has(base) || !files.has(active)) {
      audit.broken.push(`volume ${volume.id} (${volume.status}): ${files.has(base) ? active : base} is missing`);
      continue;
    }
    const size = await virtualSize(join(shareDir, active), format);
    if (size !== volume.size * GIB) {
      audit.broken.push(`volume ${volume.id} (${volume.status}): ${active} holds ${size} bytes, the record says ${volume.size} GiB`);
    }
    for (const snap of snaps.filter((s) => s.status === 'available')) {
      const overlay = info?.[snap.id];
      if (!overlay || !files.has(overlay)) audit.broken.push(`snapshot ${snap.id} (available): not in ${base}.info or its overlay is missing`);
    }
  }
  for (const file of files) if (!accounted.has(file)) audit.leftovers.push(file);
  return audit;
}
