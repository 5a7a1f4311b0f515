import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BackendError, QmpError, qmp, qmpServed } from '@kindling/protocol';
import { isChainFile } from './names.js';
import { refusal, type NewFile } from './safe-file.js';

// An attached file volume is served on this host by the CSI node's qemu-storage-daemon, which holds
// the image's write lock (qemu-img beside it is refused, and would corrupt it if it were not). A
// change to a served image goes through that daemon's QMP monitor: the image's one writer makes it.
// The daemon is found from the process list by qemu's own command line (a --blockdev opening a file
// of the volume, and the --chardev socket its --monitor listens on), and what it serves now is asked
// of it: after a live snapshot it serves an overlay its command line does not name.

export interface Served {
  pid: number;
  /** The daemon's QMP socket. */
  socket: string;
  /** The block node its export serves: the top of the chain. */
  node: string;
  /** The file of that node: where the volume's writes go now. */
  top: string;
  /** Every file the daemon has open for the volume (the top and the chain below it). */
  files: string[];
}

/** A chardev or other QemuOpts argument (`socket,id=qmp,path=/a,,b`) as keys and values; `,,` is a comma. */
function qemuOpts(arg: string): Map<string, string> {
  const parts = arg.replaceAll(',,', '\0').split(',').map((p) => p.replaceAll('\0', ','));
  return new Map(parts.map((p) => (p.includes('=') ? [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] : ['', p])));
}

const asServedError = (err: unknown): unknown => (err instanceof QmpError ? new BackendError(err.message, { socket: err.socket }) : err);

/**
 * The qemu-storage-daemon of this agent's user that serves volume `volumeId` of share folder `dir`,
 * asked what it serves now; null when none does.
 */
export async function servedBy(dir: string, volumeId: string): Promise<Served | null> {
  const uid = process.getuid?.() ?? 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (basename(argv[0] ?? '') !== 'qemu-storage-daemon') continue;
    // Only a daemon of the agent's own user is trusted with the image (anyone can name a process so).
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1) !== uid) continue;
    const value = (flag: string): string[] => argv.flatMap((a, i) => (a === flag && argv[i + 1] !== undefined ? [argv[i + 1]!] : []));
    const opens = value('--blockdev')
      .filter((a) => a.startsWith('{'))
      .map((a) => (JSON.parse(a) as { file?: { filename?: string } }).file?.filename ?? '')
      .some((f) => resolve(dirname(f)) === resolve(dir) && isChainFile(volumeId, basename(f)));
    if (!opens) continue;
    const monitor = value('--monitor').map(qemuOpts)[0]?.get('chardev');
    const socket = value('--chardev').map(qemuOpts).find((c) => c.get('') === 'socket' && c.get('id') === monitor)?.get('path');
    if (!socket) continue;
    const now = await qmpServed(socket).catch((err: unknown) => Promise.reject(asServedError(err)));
    return { pid: Number(entry), socket, ...now };
  }
  return null;
}

/** Grows the served image to `bytes` (QMP block_resize of the top node): the daemon writes the header and its tables. */
export async function resizeServed(served: Served, bytes: number): Promise<void> {
  await qmp(served.socket, [{ execute: 'block_resize', arguments: { 'node-name': served.node, size: bytes } }]).catch((err: unknown) =>
    Promise.reject(asServedError(err)),
  );
}

/** A QMP node name (at most 31 characters) for a snapshot's overlay. */
const overlayNode = (snapshotId: string): string => `snap-${snapshotId.replaceAll('-', '').slice(0, 24)}`;

/**
 * Switches the daemon's writes to `overlay`, a new qcow2 file over the served top whose header names
 * that top as its backing file (qemu's `blockdev-add` with no backing, then `blockdev-snapshot`): from
 * then on the old top is frozen, the snapshot's data. The daemon opens the overlay by name, so before
 * the switch the file it opened is checked to be the agent's own (`overlay`'s descriptor): a name a
 * share writer swapped in meanwhile is refused and the daemon lets it go.
 */
export async function switchServed(served: Served, overlay: NewFile, snapshotId: string): Promise<void> {
  const node = overlayNode(snapshotId);
  // A node left by an attempt cut before its switch (a retry of the same snapshot) is let go first.
  await qmp(served.socket, [{ execute: 'blockdev-del', arguments: { 'node-name': node } }]).catch(() => undefined);
  try {
    await qmp(served.socket, [{ execute: 'blockdev-add', arguments: { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: overlay.path }, backing: null } }]);
    const ours = await overlay.handle.stat();
    // readlink names the file as the kernel resolved it: the folder's real path.
    const opened = await filesOpenedAs(served.pid, join(await realpath(overlay.dir), overlay.name));
    if (opened.length === 0 || opened.some((s) => s.dev !== ours.dev || s.ino !== ours.ino)) {
      await qmp(served.socket, [{ execute: 'blockdev-del', arguments: { 'node-name': node } }]).catch(() => undefined);
      throw refusal(overlay.path, 'replaced', `${overlay.path} was replaced before qemu-storage-daemon opened it`);
    }
    await qmp(served.socket, [{ execute: 'blockdev-snapshot', arguments: { node: served.node, overlay: node } }]);
  } catch (err) {
    throw asServedError(err);
  }
}

/** What process `pid` has open under the name `path` (its descriptors' targets), as stat sees each. */
async function filesOpenedAs(pid: number, path: string): Promise<{ dev: number; ino: number }[]> {
  const out: { dev: number; ino: number }[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const link = `/proc/${pid}/fd/${fd}`;
    if ((await readlink(link).catch(() => '')) !== path) continue;
    const s = await stat(link).catch(() => null);
    if (s) out.push({ dev: s.dev, ino: s.ino });
  }
  return out;
}
