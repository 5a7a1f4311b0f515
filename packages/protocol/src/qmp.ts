import { createConnection } from 'node:net';

// qemu's machine protocol (QMP) over a unix socket, as qemu-storage-daemon serves it. The agent and the
// CSI node both talk to the daemon that serves a file volume on the node: the node to know what it
// serves, the agent to change it (a resize, a snapshot's overlay switch). One client for both.

export interface QmpCommand {
  execute: string;
  arguments?: Record<string, unknown>;
}

export class QmpError extends Error {
  constructor(
    readonly socket: string,
    readonly execute: string,
    why: string,
  ) {
    super(`qemu-storage-daemon at ${socket}: ${execute} failed: ${why}`);
  }
}

/**
 * Runs `commands` in order on one fresh connection (after the greeting and capabilities) and returns
 * each command's answer. The first error stops the session and rejects with it; commands after it
 * are not sent.
 */
export function qmp(socket: string, commands: QmpCommand[], timeoutMs = 30_000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    const sent: QmpCommand[] = [{ execute: 'qmp_capabilities' }, ...commands];
    const answers: unknown[] = [];
    const fail = (why: string) => {
      conn.destroy();
      reject(new QmpError(socket, sent[answers.length]?.execute ?? 'qmp', why));
    };
    conn.setTimeout(timeoutMs, () => fail(`no answer in ${timeoutMs / 1000} s`));
    conn.on('error', (err) => fail(err.message));
    conn.on('close', () => answers.length < sent.length && fail('the daemon closed the connection'));
    let buffer = '';
    conn.on('data', (chunk) => {
      buffer += chunk.toString();
      for (let at = buffer.indexOf('\n'); at >= 0; at = buffer.indexOf('\n')) {
        let msg: { QMP?: unknown; return?: unknown; error?: { desc: string } };
        try {
          msg = JSON.parse(buffer.slice(0, at)) as typeof msg;
        } catch {
          return fail(`not a QMP message: ${buffer.slice(0, Math.min(at, 200))}`);
        }
        buffer = buffer.slice(at + 1);
        if (msg.error) return fail(msg.error.desc);
        // The greeting asks for capabilities; each answer asks for the next command; events are passed over.
        if ('return' in msg) answers.push(msg.return);
        else if (!('QMP' in msg)) continue;
        if (answers.length === sent.length) {
          conn.end();
          return resolve(answers.slice(1));
        }
        conn.write(`${JSON.stringify(sent[answers.length])}\n`);
      }
    });
  });
}

/** A block node as `query-named-block-nodes` lists it (the fields used here). */
export interface QmpBlockNode {
  'node-name': string;
  /** The image's file name (for a format node, the file it opens; `json:` names decoded). */
  file: string;
  /** Its driver: a format (`qcow2`, `raw`) or the protocol under it (`file`). */
  drv: string;
  /** The file of its backing node, for a format node that has one. */
  backing_file?: string;
}

/**
 * The file the daemon's one export serves on top of its chain, and the file of every node it has
 * open (the chain below included): what the daemon serves is asked of it, not read from its argv,
 * which names only the file it started on.
 */
export async function qmpServed(socket: string): Promise<{ node: string; top: string; files: string[]; nodes: QmpBlockNode[] }> {
  const [exports, listed] = (await qmp(socket, [{ execute: 'query-block-exports' }, { execute: 'query-named-block-nodes', arguments: { flat: true } }])) as [
    { 'node-name': string }[],
    QmpBlockNode[],
  ];
  const nodes = listed.map((n) => ({
    'node-name': n['node-name'],
    file: fileOf(n.file),
    drv: n.drv,
    ...(n.backing_file === undefined ? {} : { backing_file: fileOf(n.backing_file) }),
  }));
  const node = exports[0]?.['node-name'];
  const top = nodes.find((n) => n['node-name'] === node);
  if (!node || !top) throw new QmpError(socket, 'query-block-exports', 'the daemon exports no block node');
  // Protocol nodes (driver file) repeat their format node's file name.
  return { node, top: top.file, files: [...new Set(nodes.map((n) => n.file))], nodes };
}

/**
 * The image file a node's name stands for: qemu names a node it cannot describe by a file name alone
 * (an overlay added without its backing, then given one) `json:{…}`, whose `file.filename` is the file.
 */
function fileOf(name: string): string {
  if (!name.startsWith('json:')) return name;
  const options = JSON.parse(name.slice('json:'.length)) as { filename?: string; file?: { filename?: string } };
  return options.file?.filename ?? options.filename ?? name;
}
