import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BackendError, QmpError, qmp, qmpServed, type QmpBlockNode } from '@kindling/protocol';
import { isChainFile } from './names.js';
import { openRegular, refusal, type NewFile } from './safe-file.js';

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
  /** The file its FUSE export serves the volume as (the CSI node's loop device goes over it). */
  exportFile: string | null;
  /** Its block nodes, format and protocol layers alike, with the files they open. */
  nodes: QmpBlockNode[];
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
    const exportFile = value('--export').map((a) => (a.startsWith('{') ? ((JSON.parse(a) as { mountpoint?: string }).mountpoint ?? null) : null))[0] ?? null;
    const now = await qmpServed(socket).catch((err: unknown) => Promise.reject(asServedError(err)));
    return { pid: Number(entry), socket, exportFile, ...now };
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
 * then on the old top is frozen, the snapshot's data. The daemon opens the overlay by name, and reopens
 * the old top read-only by name as it makes it the overlay's backing file; so before the switch both
 * are checked to be what the agent holds: the overlay the agent's own descriptor, the old top a regular
 * file whose name still holds the file the daemon has open. A name a share writer swapped in meanwhile
 * is refused and the daemon lets the overlay go. (What is left: a swap in the instants between that
 * check and qemu's reopen. Closing it takes descriptors passed over QMP, `add-fd`, which needs
 * SCM_RIGHTS on the socket, which Node cannot send.)
 */
export async function switchServed(served: Served, overlay: NewFile, snapshotId: string): Promise<void> {
  const node = overlayNode(snapshotId);
  // A node left by an attempt cut before its switch (a retry of the same snapshot) is let go first.
  await qmp(served.socket, [{ execute: 'blockdev-del', arguments: { 'node-name': node } }]).catch(() => undefined);
  try {
    await qmp(served.socket, [{ execute: 'blockdev-add', arguments: { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: overlay.path }, backing: null } }]);
    try {
      await expectDaemonHolds(served.pid, overlay.path, await overlay.handle.stat());
      const top = await openRegular(served.top);
      await expectDaemonHolds(served.pid, served.top, await top.stat()).finally(() => top.close());
    } catch (err) {
      await qmp(served.socket, [{ execute: 'blockdev-del', arguments: { 'node-name': node } }]).catch(() => undefined);
      throw err;
    }
    await qmp(served.socket, [{ execute: 'blockdev-snapshot', arguments: { node: served.node, overlay: node } }]);
  } catch (err) {
    throw asServedError(err);
  }
}

/** Refused unless every descriptor daemon `pid` has open under `path` is the file `ours` (and it has one). */
async function expectDaemonHolds(pid: number, path: string, ours: { dev: number; ino: number }): Promise<void> {
  // readlink names the file as the kernel resolved it: the folder's real path.
  const real = join(await realpath(dirname(path)), basename(path));
  // qemu reopens a node (read-only, read-write) by opening anew and closing the old descriptor: read in
  // between, the listing may hold neither; it is read again then, a few times.
  for (let attempt = 0; ; attempt++) {
    const opened = await openedAs(pid, real);
    if (opened.some((s) => s.dev !== ours.dev || s.ino !== ours.ino) || (opened.length === 0 && attempt === 4)) {
      throw refusal(path, 'replaced', `${path} is not the file qemu-storage-daemon (pid ${pid}) has open: it was replaced`);
    }
    if (opened.length > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The files (as stat sees them) that process `pid` has open under the resolved name `real`. */
async function openedAs(pid: number, real: string): Promise<{ dev: number; ino: number }[]> {
  const opened: { dev: number; ino: number }[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const link = `/proc/${pid}/fd/${fd}`;
    if ((await readlink(link).catch(() => '')) !== real) continue;
    const s = await stat(link).catch(() => null);
    if (s) opened.push({ dev: s.dev, ino: s.ino });
  }
  return opened;
}

/** A chain file as the agent holds it open (chain.ts's HeldImage): its path, name, and descriptor as a path. */
export interface HeldFile {
  path: string;
  file: string;
  arg: string;
}

/**
 * The daemon commits `top` (a snapshot's overlay, not the file it writes to) into `base`, the file
 * below it, and re-points `above` (the file over `top`) at `base` (qemu's `block-commit` job): `base`
 * then holds what `top` showed, and the daemon drops `top` from its chain. qemu reopens `base` and
 * `above` read-write by name to do it, so each is checked against the agent's own descriptor before
 * the job starts and again once qemu has reopened it; a mismatch cancels the job at once and is
 * refused. The job ends by itself (finalized and dismissed by qemu, so a cut agent leaves nothing in
 * the daemon); whether it did its work is read from the daemon's chain, which no longer holds `top`.
 * A job of this agent still running (a retry after a crash) is waited for, not started twice.
 */
export async function commitServed(served: Served, top: HeldFile, base: HeldFile, above: HeldFile, snapshotId: string): Promise<void> {
  const node = (f: HeldFile): string => {
    const found = served.nodes.find((n) => n.drv !== 'file' && resolve(n.file) === resolve(f.path))?.['node-name'];
    if (!found) throw new BackendError(`qemu-storage-daemon (pid ${served.pid}) has no node for ${f.path}`, { socket: served.socket });
    return found;
  };
  const check = async (): Promise<void> => {
    for (const f of [base, above]) await expectDaemonHolds(served.pid, f.path, await stat(f.arg));
  };
  const job = `commit-${snapshotId.replaceAll('-', '').slice(0, 24)}`;
  const running = async (): Promise<boolean> =>
    ((await qmp(served.socket, [{ execute: 'query-jobs' }]))[0] as { id: string }[]).some((j) => j.id === job);
  try {
    if (!(await running())) {
      await check();
      await qmp(served.socket, [
        { execute: 'block-commit', arguments: { 'job-id': job, device: served.node, 'top-node': node(top), 'base-node': node(base), 'backing-file': base.file } },
      ]);
      await check().catch(async (err: unknown) => {
        await qmp(served.socket, [{ execute: 'job-cancel', arguments: { id: job, force: true } }]).catch(() => undefined);
        throw err;
      });
    }
    while (await running()) await new Promise((r) => setTimeout(r, 50));
    const after = await qmpServed(served.socket);
    const over = after.nodes.find((n) => n.drv !== 'file' && resolve(n.file) === resolve(above.path));
    if (!over?.backing_file || resolve(over.backing_file) !== resolve(base.path)) {
      throw new BackendError(`qemu-storage-daemon (pid ${served.pid}): the commit of ${top.path} into ${base.path} ended with ${above.path} still over ${over?.backing_file}`, {
        socket: served.socket,
      });
    }
    // The committed overlay's node, added by the switch that made it, is the monitor's until let go: its file closes then.
    const left = after.nodes.find((n) => n.drv !== 'file' && resolve(n.file) === resolve(top.path))?.['node-name'];
    if (left) await qmp(served.socket, [{ execute: 'blockdev-del', arguments: { 'node-name': left } }]).catch(() => undefined);
  } catch (err) {
    throw asServedError(err);
  }
}

/**
 * The mount points of the filesystems on the daemon's export (through the node's loop device over
 * it), one per filesystem: what a freeze holds. None for a volume staged as a block device.
 */
export async function filesystemsOn(served: Served): Promise<string[]> {
  if (!served.exportFile) return [];
  // sysfs names a loop device's file as the kernel resolved it: a state folder behind a symlink too.
  const exported = await realpath(served.exportFile).catch(() => served.exportFile);
  const devices = new Set<string>();
  for (const name of (await readdir('/sys/block')).filter((n) => n.startsWith('loop'))) {
    const backing = (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '')).trim();
    if (backing === exported) devices.add((await readFile(`/sys/block/${name}/dev`, 'utf8')).trim());
  }
  const mounts = new Map<string, string>();
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [, , device, root, point] = line.split(' ');
    // The filesystem's own mount (root /), not a bind of a folder in it; one mount point is enough to freeze it.
    if (device && devices.has(device) && root === '/' && !mounts.has(device)) mounts.set(device, point!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return [...mounts.values()];
}
