// The crash scenarios' own agent in the guest (scripts/kernel-lane/crash-agent.sh): started, killed with its
// commands, and restarted by the tests, with a stall shim first on its PATH. Its VGs are its own, so the other
// scenario files never see it die.
import { Agent, type Volume } from '@kindling/sdk';
import { guestExec, guestSh, guestWritePattern, kernelEnv } from './kernel.js';
import { GiB, MiB, whileAttached } from './data.js';

const SCRIPT = '/opt/kindling/crash-agent.sh';

export const CRASH_THICK = { backend: 'crash-thick', vg: 'kindling-crash-thick' };
export const CRASH_THIN = { backend: 'crash-thin', vg: 'kindling-crash-thin', pool: 'kindling-crash-pool' };

async function crashAgent(args: string[], timeoutMs = 330_000): Promise<string> {
  const r = await guestExec([SCRIPT, ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`crash-agent.sh ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Starts the crash agent (recovery runs before it serves) and connects to it. `stallTransfers`: each copy's
 * source sends one data record, then waits until its target goes away (a kill in the middle of the data).
 */
export async function startCrashAgent({ stallTransfers = false } = {}): Promise<Agent> {
  await crashAgent(['start', ...(stallTransfers ? ['stall-transfer'] : [])]);
  const url = process.env.KINDLING_KERNEL_CRASH_URL;
  if (!url) throw new Error('KINDLING_KERNEL_CRASH_URL is not set: run these through scripts/kernel-lane/run.sh');
  return Agent.connect(url, { token: kernelEnv().token });
}

/** SIGKILL of the agent and its process group: the stalled commands die with it, nothing cleans up. */
export async function killCrashAgent(): Promise<void> {
  await crashAgent(['kill']);
}

/**
 * Stalls the agent's next `command` whose arguments match `regex` (`before` it runs, `after` it ran, or
 * `during` it, for a copy), then returns a wait for that stall.
 */
export async function stall(id: string, command: string, when: 'before' | 'after' | 'during', regex: string): Promise<() => Promise<string>> {
  await crashAgent(['stall', id, command, when, regex]);
  return () => crashAgent(['stalled', id, '300']);
}

const EDGE = 4 * MiB;

/**
 * sha256 of a 1 GiB device's first and last 4 MiB, where `fill` writes: a copy that stops short (dd goes
 * front to back) misses the end, one from the wrong source differs at both (the rest is zeros everywhere).
 */
async function edgesSha(device: string): Promise<string> {
  const read = (skip: number) => `dd if=${device} bs=1M skip=${skip} count=${EDGE / MiB} iflag=direct status=none`;
  return (await guestSh(`{ ${read(0)} && ${read((GiB - EDGE) / MiB)}; } | sha256sum`)).split(' ')[0] ?? '';
}

/** Writes a seeded pattern over the first and the last 4 MiB of a 1 GiB volume; returns their sha256. */
export async function fill(vol: Volume, seed: string): Promise<string> {
  return whileAttached(vol, async (conn) => {
    await guestWritePattern(conn.path!, `${seed}-start`, EDGE, 0);
    await guestWritePattern(conn.path!, `${seed}-end`, EDGE, GiB - EDGE);
    return edgesSha(conn.path!);
  });
}

/** The sha256 `fill` returned, read again through the volume's attached device. */
export async function deviceSha(vol: Volume): Promise<string> {
  return whileAttached(vol, (conn) => edgesSha(conn.path!));
}

/** Where an LV's last extent lies on its PV: a zeroed-then-freed LV must leave zeros there. */
export async function lastExtent(vg: string, lv: string): Promise<{ pv: string; offset: number; bytes: number }> {
  const ranges = (await guestSh(`lvs --noheadings -o seg_pe_ranges ${vg}/${lv}`)).trim().split(/\s+/);
  const [pv, span] = (ranges.at(-1) ?? '').split(':');
  const end = Number(span?.split('-')[1]);
  const extent = Number((await guestSh(`vgs --noheadings --units b --nosuffix -o vg_extent_size ${vg}`)).trim());
  const peStart = Number((await guestSh(`pvs --noheadings --units b --nosuffix -o pe_start ${pv}`)).trim());
  if (!pv || !Number.isFinite(end) || !extent) throw new Error(`cannot place ${vg}/${lv}: ${ranges.join(' ')}`);
  return { pv, offset: peStart + end * extent, bytes: extent };
}

/** sha256 of `bytes` bytes at `offset` of a guest device, read directly. */
export async function shaAt(device: string, offset: number, bytes: number): Promise<string> {
  const out = await guestSh(
    `dd if=${device} bs=${bytes} skip=${offset} count=1 iflag=direct,skip_bytes status=none | sha256sum`,
  );
  return out.split(' ')[0] ?? '';
}

export async function zerosSha(bytes: number): Promise<string> {
  return (await guestSh(`head -c ${bytes} /dev/zero | sha256sum`)).split(' ')[0] ?? '';
}
