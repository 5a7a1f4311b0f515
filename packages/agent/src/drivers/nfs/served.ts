import { readdir, readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { basename } from 'node:path';
import { BackendError } from '@kindling/protocol';

// An attached qcow2 volume is served on this host by the CSI node's qemu-storage-daemon, which
// holds the image's write lock (qemu-img beside it is refused, and would corrupt it if it were not).
// A change to a served image goes through that daemon's QMP monitor: the image's one writer makes it.
// The daemon is found from the process list by qemu's own command line: a --blockdev opening this
// file, and the --chardev socket its --monitor listens on.

export interface Served {
  /** The daemon's QMP socket. */
  socket: string;
  /** The block node that opens the image. */
  node: string;
}

/** A chardev or other QemuOpts argument (`socket,id=qmp,path=/a,,b`) as keys and values; `,,` is a comma. */
function qemuOpts(arg: string): Map<string, string> {
  const parts = arg.replaceAll(',,', '\0').split(',').map((p) => p.replaceAll('\0', ','));
  return new Map(parts.map((p) => (p.includes('=') ? [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] : ['', p])));
}

/** The QMP monitor of a qemu-storage-daemon of this agent's user that serves `image`, else null. */
export async function servedBy(image: string): Promise<Served | null> {
  const uid = process.getuid?.() ?? 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (basename(argv[0] ?? '') !== 'qemu-storage-daemon') continue;
    // Only a daemon of the agent's own user is trusted with the image (anyone can name a process so).
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1) !== uid) continue;
    const value = (flag: string): string[] => argv.flatMap((a, i) => (a === flag && argv[i + 1] !== undefined ? [argv[i + 1]!] : []));
    const node = value('--blockdev')
      .filter((a) => a.startsWith('{'))
      .map((a) => JSON.parse(a) as { 'node-name'?: string; file?: { filename?: string } })
      .find((b) => b.file?.filename === image)?.['node-name'];
    const monitor = value('--monitor').map(qemuOpts)[0]?.get('chardev');
    const socket = value('--chardev').map(qemuOpts).find((c) => c.get('') === 'socket' && c.get('id') === monitor)?.get('path');
    if (node && socket) return { socket, node };
  }
  return null;
}

/** Grows the served image to `bytes` (QMP block_resize): the daemon writes the header and its tables. */
export function resizeServed(served: Served, bytes: number): Promise<void> {
  return qmp(served.socket, 'block_resize', { 'node-name': served.node, size: bytes }).then(() => undefined);
}

/** One QMP command on a fresh connection: the greeting, capabilities, then the command's answer. */
function qmp(socket: string, execute: string, args: Record<string, unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    const fail = (why: string) => {
      conn.destroy();
      reject(new BackendError(`qemu-storage-daemon at ${socket}: ${execute} failed: ${why}`, { socket }));
    };
    conn.setTimeout(30_000, () => fail('no answer in 30 s'));
    conn.on('error', (err) => fail(err.message));
    const sent = [{ execute: 'qmp_capabilities' }, { execute, arguments: args }];
    let answered = 0;
    let buffer = '';
    conn.on('data', (chunk) => {
      buffer += chunk.toString();
      for (let at = buffer.indexOf('\n'); at >= 0; at = buffer.indexOf('\n')) {
        const msg = JSON.parse(buffer.slice(0, at)) as { QMP?: unknown; return?: unknown; error?: { desc: string } };
        buffer = buffer.slice(at + 1);
        if (msg.error) return fail(msg.error.desc);
        // The greeting asks for capabilities; each answer asks for the next command; events are passed over.
        if (!('QMP' in msg) && !('return' in msg)) continue;
        if ('return' in msg && ++answered === sent.length) {
          conn.end();
          return resolve(msg.return);
        }
        conn.write(`${JSON.stringify(sent[answered])}\n`);
      }
    });
  });
}
