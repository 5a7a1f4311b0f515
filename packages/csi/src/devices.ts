import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import type { Connection, Volume } from '@kindling/sdk';
import { CsiError, grpcStatusOf } from './errors.js';
import { must, run } from './exec.js';
import { detachLoopsOf, loopsOfVolume, mountsOfVolume } from './local.js';
import { serveImage, stopServing } from './qsd.js';

/** ENOENT: the path names nothing. */
export const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** The attachment's path, null when it names nothing on this host now (a stale record). */
async function presentPath(connection: Connection): Promise<string | null> {
  if (!connection.path) throw new CsiError(status.INTERNAL, `the agent attached volume ${connection.volume.id} without a local path`);
  try {
    await stat(connection.path);
    return connection.path;
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

/**
 * The block device of a volume on this host: attaches through the local agent (or reuses the
 * attachment the agent's index already holds) and, for a file volume, backs it with a loop device
 * over the raw file qemu-storage-daemon serves (qsd.ts), whatever the volume's format.
 * A recorded attachment whose path is gone is attached afresh once; still gone is refused.
 */
export async function attachDevice(volume: Volume, stateDir: string): Promise<string> {
  const recorded = volume.connections.find((c) => c.attached && c.path);
  // Asked even when recorded: the agent answers with where the volume is now (a live snapshot moves a
  // file volume's writes to a new file, and the old one is the snapshot's, never to be served again).
  // A recorded attachment the agent cannot answer for (its file gone) is attached afresh, once; an
  // agent that cannot be reached is that (UNAVAILABLE), not a gone file.
  let connection: Connection | null = await volume.attach().catch((err: unknown) => {
    if (recorded && grpcStatusOf(err).code !== status.UNAVAILABLE) return null;
    throw err;
  });
  let path = connection ? await presentPath(connection) : null;
  // Never detached under a mount: a device node gone while its filesystem is mounted is the kernel's to explain.
  if (!path && recorded && !(await mountsOfVolume(volume.id)).length) {
    await volume.detach();
    try {
      connection = await volume.attach();
    } catch (err) {
      throw new CsiError(status.FAILED_PRECONDITION, `volume ${volume.id} was attached at ${recorded.path}, which is gone, and attaching it again failed: ${grpcStatusOf(err).details}`);
    }
    path = await presentPath(connection);
  }
  if (!path || !connection) throw new CsiError(status.FAILED_PRECONDITION, `the agent attached volume ${volume.id} at ${connection?.path ?? recorded?.path}, which does not exist on this host`);
  const info = await stat(path);
  if (info.isBlockDevice()) return path;
  const format = connection.connectionInfo.data['format'];
  if (format !== 'raw' && format !== 'qcow2') throw new CsiError(status.FAILED_PRECONDITION, `volume ${volume.id} is a ${String(format)} file; only raw and qcow2 files can be staged`);
  // A loop in place is the stage's own (a crash after it, a second stage): its file is already served.
  const [loop] = await loopsOfVolume(volume.id);
  if (loop) return loop;
  const file = await serveImage(stateDir, volume.id, path, format);
  return (await must('losetup', ['--find', '--show', file])).trim();
}

/** The node's own half of a detach, which needs no agent: the loop devices, then the daemon serving a file volume. */
export async function releaseLocal(volumeId: string, stateDir: string): Promise<void> {
  await detachLoopsOf(volumeId);
  await stopServing(stateDir, volumeId);
}

/** Undoes attachDevice: the node's half, then the agent's attachment. */
export async function detachDevice(volume: Volume, stateDir: string): Promise<void> {
  await releaseLocal(volume.id, stateDir);
  if (volume.connections.some((c) => c.attached)) await volume.detach();
}

/**
 * After a failed stage: detaches the volume unless a mount still uses its device (a stage at
 * another path). Returns the error to throw, which names an undo that failed too.
 */
export async function undoAttach(volume: Volume, stateDir: string, cause: unknown): Promise<unknown> {
  try {
    if (!(await mountsOfVolume(volume.id)).length) await detachDevice(volume, stateDir);
    return cause;
  } catch (err) {
    const { code, details } = grpcStatusOf(cause);
    return new CsiError(code, `${details}; undoing its attach failed too (NodeUnstageVolume detaches it): ${grpcStatusOf(err).details}`);
  }
}

/** What a device holds, as a full probe of every kind of signature sees it. */
export type Contents = { blank: true } | { blank: false; filesystem: string | null; found: string };

const parseExport = (text: string): Map<string, string> =>
  new Map(text.split('\n').flatMap((line) => (line.includes('=') ? [[line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as [string, string]] : [])));

/**
 * Blank means no signature at all: no filesystem, partition table, RAID, LVM or LUKS header, by
 * blkid's full probe (exit 2: nothing) and by wipefs, which also lists what blkid sets aside (a
 * backup GPT header). `filesystem` is set only for a device that holds a filesystem and nothing else.
 */
export async function contentsOf(device: string): Promise<Contents> {
  const r = await run('blkid', ['--probe', '--output', 'export', device]);
  if (r.code === 2) {
    const signatures = (await must('wipefs', ['--no-act', '--noheadings', '--output', 'TYPE', device])).split('\n').map((l) => l.trim()).filter(Boolean);
    return signatures.length ? { blank: false, filesystem: null, found: `signatures ${signatures.join(', ')}` } : { blank: true };
  }
  // Exit 8: signatures of more than one kind, which no mount could pick between.
  if (r.code === 8) return { blank: false, filesystem: null, found: 'more than one signature (blkid: ambivalent probe)' };
  if (r.code !== 0) throw new CsiError(status.INTERNAL, `blkid ${device} exited ${r.code}: ${r.stderr.trim()}`);
  const tags = parseExport(r.stdout);
  const table = tags.get('PTTYPE');
  if (table) return { blank: false, filesystem: null, found: `a ${table} partition table` };
  const type = tags.get('TYPE') ?? 'an unnamed';
  if (tags.get('USAGE') !== 'filesystem') return { blank: false, filesystem: null, found: `a ${type} signature (${tags.get('USAGE') ?? 'unknown use'})` };
  return { blank: false, filesystem: type, found: `a ${type} filesystem` };
}

/** How long a grown file may still read its old size: FUSE (the qcow2 export) caches attributes ~1 s. */
const GROWN_SIZE_WAIT_MS = 10_000;

/**
 * Has a loop device read its file's size again after the volume grew to `bytes`. The file behind a
 * qcow2 volume is the daemon's FUSE export, whose size the kernel caches for a moment after the
 * daemon's resize: read too soon, the loop device (and the filesystem grown over it) keeps the old
 * size, so the size is awaited first (bounded), then the capacity set.
 */
export async function growLoop(device: string, bytes: number): Promise<void> {
  const backing = (await readFile(`/sys/block/${basename(device)}/loop/backing_file`, 'utf8')).trim();
  const until = Date.now() + GROWN_SIZE_WAIT_MS;
  while ((await stat(backing)).size < bytes && Date.now() < until) await delay(100);
  await must('losetup', ['--set-capacity', device]);
}
