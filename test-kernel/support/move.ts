// The move scenarios' helpers (issue 22): a volume's whole content and its sha256 in the guest, and a second
// agent in the guest (its own NFS backend, data dir and port) with the `kindling` CLI run beside it, so that a
// copy goes from one agent to another over the guest's loopback as it would between two hosts.
import type { Volume } from '@kindling/sdk';
import { formatOf } from '../../test/support/storage-probe.js';
import { guestExec, guestSh } from './kernel.js';
import { whileAttached } from './data.js';

export const SLOW = 600_000;

/** The guest's shell line that prints the sha256 of a device or image file's whole logical content. */
function shaScript(path: string, format: string): string {
  return format === 'qcow2'
    ? `t=$(mktemp) && qemu-img convert -f qcow2 -O raw '${path}' "$t" && sha256sum "$t" && rm -f "$t"`
    : `dd if='${path}' bs=4M${path.startsWith('/dev/') ? ' iflag=direct' : ''} status=none | sha256sum`;
}

const firstWord = (out: string): string => out.split(' ')[0] ?? '';

/** sha256 of a volume's whole logical content (a qcow2 file converted to raw first), read in the guest. */
export async function contentSha(vol: Volume): Promise<string> {
  return whileAttached(vol, async (conn) => {
    return firstWord(await guestSh(shaScript(conn.path!, formatOf(conn)), SLOW));
  });
}

/** Random blocks at the start, middle and end, an allocated block of zeros, and never-written ranges. */
export async function fillMixed(vol: Volume): Promise<void> {
  await whileAttached(vol, async (conn) => {
    const dd = (from: string, seekMib: number, mib: number) =>
      `dd if=${from} of='${conn.path!}' bs=1M seek=${seekMib} count=${mib} iflag=fullblock oflag=direct conv=notrunc,fsync status=none`;
    await guestSh([dd('/dev/urandom', 0, 4), dd('/dev/urandom', 300, 8), dd('/dev/zero', 500, 4), dd('/dev/urandom', 777, 1), dd('/dev/urandom', 1020, 4)].join(' && '), SLOW);
  });
}

/** The lane's agent, as the guest reaches it. */
export const MAIN_URL = 'ws://127.0.0.1:8600';

/** The second agent: an NFS backend on its own folder of the guest's export (the main agent's share is `/export`). */
export const MOVE = { url: 'ws://127.0.0.1:8604', hostId: 'kl-move-host', backend: 'move-nfs', share: '127.0.0.1:/export/move' };

const KL = '/opt/kindling';
const RUN = '/run/kl-move';

/** Starts the second agent in the guest (the exec helper's KL_TOKEN is the lane's token) and waits for /healthz. */
export async function startMoveAgent(): Promise<void> {
  const port = new URL(MOVE.url).port;
  const config = {
    listen: { host: '127.0.0.1', port: Number(port) },
    dataDir: '/var/lib/kindling-move',
    hostId: MOVE.hostId,
    token: '@TOKEN@',
    capacityRefreshSeconds: 86400,
    backends: [{ name: MOVE.backend, driver: 'nfs', shares: [MOVE.share], mountPointBase: '/var/lib/kindling-move/mnt', format: 'qcow2' }],
  };
  const health = `fetch('http://127.0.0.1:${port}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;
  await guestSh(
    [
      `mkdir -p /export/move /var/lib/kindling-move ${RUN}`,
      `printf '%s' '${JSON.stringify(config)}' | sed "s/@TOKEN@/$KL_TOKEN/" >${RUN}/kindling.json`,
      `cd ${KL}/app`,
      `setsid -f /bin/sh -c "echo \\$\\$ >${RUN}/agent.pid; exec ${KL}/bin/node packages/agent/dist/bin.js --config ${RUN}/kindling.json" >>/run/kl-out/move-agent.log 2>&1 </dev/null`,
      `for i in $(seq 1 600); do ${KL}/bin/node -e "${health}" && exit 0; sleep 0.5; done`,
      `tail -n 30 /run/kl-out/move-agent.log >&2; exit 1`,
    ].join('\n'),
    330_000,
  );
}

export async function stopMoveAgent(): Promise<void> {
  await guestSh(`kill -TERM "$(cat ${RUN}/agent.pid)" 2>/dev/null || true`);
}

/**
 * Runs the `kindling` CLI in the guest over both agents (`--agents`, the lane's token from the environment)
 * with JSON output; returns the parsed document, throws with its stderr on a non-zero exit.
 */
export async function kindling(args: string[]): Promise<Record<string, unknown>> {
  const argv = [`${KL}/bin/node`, `${KL}/app/packages/cli/dist/bin.js`, '--agents', `${MAIN_URL},${MOVE.url}`, '--json', ...args];
  const r = await guestExec(['/bin/sh', '-c', 'KINDLING_TOKEN="$KL_TOKEN" exec "$@"', 'kindling', ...argv], { timeoutMs: SLOW });
  if (r.code !== 0) throw new Error(`kindling ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** sha256 of a volume's whole content on the second agent, attached and detached through the CLI. */
export async function cliContentSha(volumeId: string): Promise<string> {
  const conn = (await kindling(['volume', 'attach', volumeId])) as { path: string; connectionInfo: { data: { format?: string } } };
  try {
    return firstWord(await guestSh(shaScript(conn.path, conn.path.startsWith('/dev/') ? 'raw' : String(conn.connectionInfo.data.format)), SLOW));
  } finally {
    await kindling(['volume', 'detach', volumeId]);
  }
}
