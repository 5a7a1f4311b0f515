import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { qmpServed } from '@kindling/protocol';
import { must } from './exec.js';
import { mountAt } from './mounts.js';

// A file volume (an NFS volume's raw or qcow2 active file) is served to the node as a plain file by
// qemu-storage-daemon's FUSE export, and the usual loop device goes over that file. Raw files too:
// the daemon is what can switch a mounted volume's writes to a new overlay when the agent snapshots
// it live (the agent asks it over its QMP socket), which a loop device over the file cannot do.
// FUSE, not NBD: this host and the lane's guest both have FUSE, the host has no nbd module, and an
// export onto a file needs no device numbers to allocate or free.
//
// The daemon is found again from the process list (its argv names the export file), never from
// memory: after a restart of the node plugin, stage reuses it and unstage stops it. It is not tied
// to the plugin's life on purpose: mounted filesystems read through it, and a plugin upgrade must not
// pull the disk from under running pods. The export file is `<stateDir>/volume-<id>`, the NFS
// driver's own name, so the loop device over it is found by local.ts as any file volume's.

const DAEMON = 'qemu-storage-daemon';
/** How long a stopping daemon gets to flush and exit before it is killed. */
const STOP_MS = 30_000;

/** Where the volume's image is served as a raw file (also the FUSE mount point). */
export const exportFileOf = (stateDir: string, volumeId: string): string => join(stateDir, `volume-${volumeId}`);
const qmpSocketOf = (stateDir: string, volumeId: string): string => `${exportFileOf(stateDir, volumeId)}.qmp`;

// Whole arguments in JSON (no comma escaping for paths), so a daemon is recognised by exact argv.
const imageArg = (image: string, format: ImageFormat): string => JSON.stringify({ driver: format, 'node-name': 'disk', file: { driver: 'file', filename: image } });
const exportArg = (file: string): string => JSON.stringify({ type: 'fuse', id: 'export', 'node-name': 'disk', mountpoint: file, writable: true });

export type ImageFormat = 'raw' | 'qcow2';

export interface Daemon {
  pid: number;
  /** The file it was started on (its argv's; after a live snapshot it writes to an overlay above it). */
  image: string;
}

/** The live daemon serving the volume's export file, from the process list; null when none is. */
export async function daemonOf(stateDir: string, volumeId: string): Promise<Daemon | null> {
  const wanted = exportArg(exportFileOf(stateDir, volumeId));
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // A zombie's (or a vanished process's) cmdline reads empty: it serves nothing.
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (basename(argv[0] ?? '') !== DAEMON || !argv.includes(wanted)) continue;
    const blockdev = argv[argv.indexOf('--blockdev') + 1] ?? '{}';
    const image = (JSON.parse(blockdev) as { file?: { filename?: string } }).file?.filename ?? '';
    return { pid: Number(entry), image };
  }
  return null;
}

/**
 * Whether the volume's running daemon has `image` open, asked over its QMP socket (its argv names
 * only the file it started on): as its top, or below the overlay of a live snapshot whose record the
 * agent has yet to write (the agent settles that from the daemon, which is the truth of where writes go).
 */
async function hasOpen(stateDir: string, volumeId: string, image: string): Promise<boolean> {
  const served = await qmpServed(qmpSocketOf(stateDir, volumeId)).catch(() => null);
  return served?.files.includes(image) ?? false;
}

/**
 * Serves `image` (the volume's active file; a qcow2 file's backing files opened read-only as its
 * header names them, the chain the agent checked at attach) as the raw file this returns. Reuses a
 * daemon that has it open; one that does not (it serves an older file of the volume) is replaced.
 */
export async function serveImage(stateDir: string, volumeId: string, image: string, format: ImageFormat): Promise<string> {
  const file = exportFileOf(stateDir, volumeId);
  if ((await daemonOf(stateDir, volumeId)) && (await hasOpen(stateDir, volumeId, image))) return file;
  await stopServing(stateDir, volumeId);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  // The mount point is made here, once: a name planted in the state folder is refused, never followed.
  await (await open(file, constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY, 0o600)).close();
  const socket = qmpSocketOf(stateDir, volumeId);
  await rm(socket, { force: true });
  // --daemonize returns once the export is up; the daemon leaves the plugin's session and process group.
  // The QMP monitor is how the image's one writer is asked to change it while served (a resize, an overlay).
  await must(DAEMON, [
    '--blockdev', imageArg(image, format),
    '--export', exportArg(file),
    '--chardev', `socket,id=qmp,path=${socket.replaceAll(',', ',,')},server=on,wait=off`,
    '--monitor', 'chardev=qmp',
    '--daemonize',
  ]).catch(async (err: unknown) => {
    await rm(file, { force: true });
    throw err;
  });
  return file;
}

/** Stops the volume's daemon (it flushes and unmounts its export) and removes what it left. Idempotent. */
export async function stopServing(stateDir: string, volumeId: string): Promise<void> {
  const file = exportFileOf(stateDir, volumeId);
  const running = await daemonOf(stateDir, volumeId);
  if (running) {
    process.kill(running.pid, 'SIGTERM');
    const deadline = Date.now() + STOP_MS;
    while ((await daemonOf(stateDir, volumeId)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (await daemonOf(stateDir, volumeId)) process.kill(running.pid, 'SIGKILL');
  }
  // A daemon that died leaves its FUSE mount behind, answering ENOTCONN.
  if (await mountAt(file)) await must('umount', ['--lazy', file]);
  await rm(file, { force: true });
  await rm(qmpSocketOf(stateDir, volumeId), { force: true });
}
