// kindling-csi's node plugin in the guest, as its DaemonSet pod would run it: detached, on TCP port KL_CSI_PORT
// (forwarded to the host as KINDLING_KERNEL_CSI_URL), talking to the guest's agent with the lane token read from
// a file. The csi-* scenarios start, kill and restart it; its output goes to the lane's last/guest/csi-node.log.
import { Agent } from '@kindling/sdk';
import { csiClient, type CsiServiceClient } from '../../packages/csi/src/testing/client.js';
import type { NodeFiles } from '../../packages/csi/src/testing/pvc-life.js';
import { testPath } from '../../test/support/storage-probe.js';
import { runInGuest } from './data.js';
import { guestExec, guestSh, kernelEnv, type ExecResult } from './kernel.js';

const RUN = '/run/kl-csi';
const LOG = '/run/kl-out/csi-node.log';
// a count even before the log exists (grep -c prints 0 and exits 1 on no match)
const LISTENING = `cat ${LOG} 2>/dev/null | grep -c '"event":"listening"' || true`;
// node's start-up under emulation takes seconds; the start script gives up after 120 s
const START_MS = 180_000;

// setsid: the plugin leads its own process group, so a kill takes its mkfs or mount with it. Started once it
// logs that it listens (a new line in the log); a plugin that dies first fails the start with its log.
// mkfs goes through the lane's stall shim (stall-shim.sh), so a scenario can kill the plugin mid-stage.
const START = `set -e
. /opt/kindling/lane.env
mkdir -p ${RUN} /run/kl-shim /run/kl-stall/rules /run/kl-stall/claimed /run/kl-stall/hit
for c in mkfs.ext4 mkfs.xfs; do ln -sf /opt/kindling/stall-shim.sh /run/kl-shim/$c; done
(umask 077; printf '%s\\n' "$KL_TOKEN" >${RUN}/token)
rm -f ${RUN}/pid
before=$(${LISTENING})
cd /opt/kindling/app
PATH=/run/kl-shim:$PATH setsid -f /bin/sh -c "echo \\$\\$ >${RUN}/pid; exec /opt/kindling/bin/node packages/csi/dist/bin.js --mode node \\
  --endpoint 0.0.0.0:$KL_CSI_PORT --node-agent ws://127.0.0.1:$KL_AGENT_PORT --token-file ${RUN}/token" >>${LOG} 2>&1 </dev/null
for _ in $(seq 1 240); do
  [ "$(${LISTENING})" -gt "$before" ] && exit 0
  if [ -s ${RUN}/pid ] && ! kill -0 "$(cat ${RUN}/pid)" 2>/dev/null; then break; fi
  sleep 0.5
done
echo "the CSI node plugin did not start; its log:" >&2
tail -n 30 ${LOG} >&2
exit 1`;

// procps' kill: dash's builtin takes no process group. Gone once no process or only its zombie is left
// (PID 1, guest-init.sh, may not reap it at once).
const KILL = `pid=$(cat ${RUN}/pid)
/bin/kill -KILL -- "-$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
  case "$(ps -o stat= -p "$pid")" in ''|Z*) exit 0 ;; esac
  sleep 0.1
done
echo "node plugin $pid still running: $(ps -o pid,stat,args -g "$pid")" >&2
exit 1`;

export interface GuestNodePlugin {
  /** A client of its Node service, new after each restart (kubelet reconnects). */
  kubelet(): CsiServiceClient;
  /** SIGKILL, then a fresh start: a DaemonSet pod replaced. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startGuestNodePlugin(): Promise<GuestNodePlugin> {
  const address = process.env.KINDLING_KERNEL_CSI_URL;
  if (!address) throw new Error('KINDLING_KERNEL_CSI_URL is not set: run these through scripts/kernel-lane/run.sh');
  await guestSh(START, START_MS);
  let client = csiClient('Node', address);
  const stop = async () => {
    client.close();
    await guestSh(KILL);
  };
  return {
    kubelet: () => client,
    stop,
    restart: async () => {
      await stop();
      await guestSh(START, START_MS);
      client = csiClient('Node', address);
    },
  };
}

async function must(argv: string[], stdin?: string): Promise<ExecResult> {
  const r = await guestExec(argv, stdin === undefined ? {} : { stdin: Buffer.from(stdin) });
  if (r.code !== 0) throw new Error(`guest: ${argv.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r;
}

/** The guest's files, where the node plugin mounts: what a pod there would see. */
export const guestFiles: NodeFiles = {
  mkdir: async (path) => void (await must(['mkdir', '-p', path])),
  write: async (path, text) => void (await must(['/bin/sh', '-c', 'cat >"$1"', 'write', path], text)),
  read: async (path) => (await must(['cat', path])).stdout,
  exists: (path) => testPath(runInGuest, '-e', path),
  // findmnt lists stacked mounts in order: the last one is what the path shows
  fsType: async (path) => (await guestExec(['findmnt', '-n', '-o', 'FSTYPE', '--mountpoint', path])).stdout.trim().split('\n').at(-1) ?? '',
};

/** What a failed scenario left in the guest: mounts under `root` (deepest first), then the folder. */
export async function cleanUpGuestRoot(root: string): Promise<void> {
  await guestSh(`findmnt -rn -o TARGET | grep '^${root}/' | sort -r | while read -r m; do umount -l "$m"; done; rm -rf '${root}'`);
}

/**
 * What a failed scenario left on the agent: the claims named `pvc-<unique>...` (restores first), detached,
 * without their snapshots, deleted.
 */
export async function deleteClaims(backendName: string, unique: string): Promise<void> {
  const env = kernelEnv();
  const agent = await Agent.connect(env.url, { token: env.token });
  try {
    const backend = await agent.backend(backendName);
    const left = (await backend.volumes()).filter((v) => v.name?.startsWith(`pvc-${unique}`) && v.status !== 'deleted');
    for (const vol of left.sort((a, b) => (b.name ?? '').length - (a.name ?? '').length)) {
      if (vol.connections.some((c) => c.attached)) await vol.detach();
      for (const snap of [...vol.snapshots]) await snap.delete();
      await vol.delete();
    }
  } finally {
    await agent.close();
  }
}
