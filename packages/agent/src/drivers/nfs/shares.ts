import { createHash } from 'node:crypto';
import { mkdir, readFile, realpath, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BackendError } from '@kindling/protocol';
import type { Runner } from '../../exec/run.js';
import { probeFile } from './names.js';

/** `host:/path` is mounted by the agent; anything else is an absolute local folder used as it is. */
export const isRemoteShare = (share: string): boolean => /^[^/]+:\//.test(share);

/** os-brick's mount point: `<base>/<md5 of the share string>`, so the same share always lands in one place. */
export const mountPointFor = (mountPointBase: string, share: string): string =>
  join(mountPointBase, createHash('md5').update(share).digest('hex'));

/** The folder that holds a share's volume files on this host. */
export const shareDir = (mountPointBase: string, share: string): string =>
  isRemoteShare(share) ? mountPointFor(mountPointBase, share) : share;

/** Mount points listed in a /proc/<pid>/mountinfo text (field 5, with the kernel's octal escapes undone). */
export function parseMountPoints(mountinfo: string): Set<string> {
  const points = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field) points.add(field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))));
  }
  return points;
}

export async function isMounted(mountPoint: string, mountInfoPath: string): Promise<boolean> {
  const points = parseMountPoints(await readFile(mountInfoPath, 'utf8'));
  // The kernel lists the resolved path; mountPointBase may sit behind a symlink.
  const real = await realpath(mountPoint).catch(() => mountPoint);
  return points.has(mountPoint) || points.has(real);
}

/** Mounts `host:/path` at its mount point unless something is already mounted there. */
export async function mountShare(
  run: Runner,
  share: string,
  mountPoint: string,
  options: string | undefined,
  mountInfoPath: string,
): Promise<void> {
  await mkdir(mountPoint, { recursive: true });
  if (await isMounted(mountPoint, mountInfoPath)) return;
  try {
    await run(['mount', '-t', 'nfs', ...(options ? ['-o', options] : []), share, mountPoint]);
  } catch (err) {
    if (!(err instanceof BackendError)) throw err;
    throw new BackendError(`cannot mount NFS share ${share} at ${mountPoint}: ${err.message}`, err.details);
  }
}

/** A local-folder share: created when missing (the embedded default), refused when not a folder. */
export async function prepareLocalShare(share: string): Promise<void> {
  const found = await stat(share).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!found) await mkdir(share, { recursive: true });
  else if (!found.isDirectory()) throw new BackendError(`share ${share} is not a folder`, { share });
}

/**
 * The probe files this process is writing now. Readiness probes run while the storage check after ready
 * scans the share: a probe under way is this agent's live work, never a leftover of a dead one. A probe
 * may also end between the scan's listing and its look at the name, so each scan keeps every probe
 * that was live while it ran (`probesDuring`).
 */
const liveProbes = new Set<string>();
const scans = new Set<Set<string>>();

/** Opened before a scan lists a share: `ours(path)` says the probe ran in this process meanwhile. */
export function probesDuring(): { ours(path: string): boolean; close(): void } {
  const seen = new Set(liveProbes);
  scans.add(seen);
  return { ours: (path) => seen.has(path), close: () => void scans.delete(seen) };
}

/** Creates and removes a probe file, giving its path; throws the file system's error when the share cannot be written. */
export async function probeWritable(dir: string, owner: string): Promise<string> {
  const probe = join(dir, probeFile(owner));
  liveProbes.add(probe);
  for (const seen of scans) seen.add(probe);
  try {
    await writeFile(probe, '', { flag: 'wx' });
    await rm(probe);
    return probe;
  } finally {
    liveProbes.delete(probe);
  }
}

export interface ShareSpace {
  totalBytes: number;
  /** Space an unprivileged writer can still use (f_bavail). */
  freeBytes: number;
}

export async function shareSpace(dir: string): Promise<ShareSpace> {
  const s = await statfs(dir);
  return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}
