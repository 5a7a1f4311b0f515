import { execFile, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { startAgentProcess, type AgentOptions, type AgentProcess } from './agent-process.js';

// Fleet scenarios run hosts with really different addresses, in network namespaces made here. Only
// addresses made here are ever dialled.

const run = promisify(execFile);

/** Why network namespaces cannot be made here, else null; probes by making (and removing) one. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root';
  const probe = `kf-probe-${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.error) return `iproute2 missing (${added.error.message})`;
  if (added.status !== 0) return `ip netns add failed: ${added.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

export interface NetnsHost {
  netns: string;
  /** The namespace's end of its veth pair; the host's end is the same /30 with .1. */
  address: string;
}

/**
 * `count` namespaces, each joined to this one by a veth pair on its own /30 of 10.213.0.0/16 (the
 * third octet derived from the pid, so two runs never share one). `destroy` removes them all.
 */
export async function createNetnsHosts(count: number): Promise<{ hosts: NetnsHost[]; destroy(): Promise<void> }> {
  const made: string[] = [];
  const destroy = async (): Promise<void> => {
    // Deleting a namespace deletes its veth end, and with it the pair.
    for (const netns of made) await run('ip', ['netns', 'del', netns]).catch(() => undefined);
  };
  const hosts: NetnsHost[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const netns = `kf-${process.pid}-${i}`;
      const outside = `kf${process.pid}h${i}`;
      const inside = `kf${process.pid}n${i}`;
      const subnet = `10.213.${((process.pid % 60) * 4 + i) % 256}`;
      await run('ip', ['netns', 'add', netns]);
      made.push(netns);
      await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside, 'netns', netns]);
      await run('ip', ['addr', 'add', `${subnet}.1/30`, 'dev', outside]);
      await run('ip', ['link', 'set', outside, 'up']);
      await run('ip', ['-n', netns, 'addr', 'add', `${subnet}.2/30`, 'dev', inside]);
      await run('ip', ['-n', netns, 'link', 'set', inside, 'up']);
      hosts.push({ netns, address: `${subnet}.2` });
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  return { hosts, destroy };
}

/** A loopback port free right now, for an agent that will start later. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export type { AgentProcess as LaunchedAgent } from './agent-process.js';

/** A real agent process at `host:port` as given, optionally inside a namespace. */
export const launchAgent = (options: AgentOptions & { host: string; port: number }): Promise<AgentProcess> =>
  startAgentProcess(options);
