import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { AGENT_BIN } from './agent-process.js';

// Fleet scenarios need what startAgentProcess does not offer: an agent on a port chosen before it
// starts (so a fleet can be given the URL of a host that comes up late) and one inside a network
// namespace (so hosts really have different addresses). Only addresses made here are ever dialled.

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

export interface LaunchOptions {
  host: string;
  port: number;
  token?: string;
  /** Run the agent inside this namespace (`ip netns exec`). */
  netns?: string;
  /** Backends for the agent's temp dir; default one NFS backend `nfs` on a local-folder share. */
  backends?: (dir: string) => unknown[];
}

export interface LaunchedAgent {
  url: string;
  hostId: string;
  /** SIGKILL: the host dies. */
  kill(): Promise<void>;
  /** Kill and remove the temp dir. */
  dispose(): Promise<void>;
}

/** Starts a real agent process with `host:port` as given and waits for its `listening` line. */
export async function launchAgent(options: LaunchOptions): Promise<LaunchedAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'kindling-fleet-'));
  const config = {
    listen: { host: options.host, port: options.port },
    dataDir: join(dir, 'data'),
    ...(options.token ? { token: options.token } : {}),
    backends: options.backends?.(dir) ?? [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')] }],
  };
  const configFile = join(dir, 'agent.json');
  await writeFile(configFile, JSON.stringify(config));
  const argv = [process.execPath, AGENT_BIN, '--config', configFile];
  // `ip netns exec` execs the command in place, so the child's pid is the agent's own.
  const [command, ...args] = options.netns ? ['ip', 'netns', 'exec', options.netns, ...argv] : argv;
  const child = spawn(command as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    const listening = await new Promise<{ url: string; hostId: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start in 20 s:\n${stderr}`)), 20_000);
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (!line.startsWith('{')) return;
        const msg = JSON.parse(line) as { event?: string; url: string; hostId: string };
        if (msg.event !== 'listening') return;
        clearTimeout(timer);
        resolve(msg);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agent exited with ${code} before listening:\n${stderr}`));
      });
    });
    return {
      url: listening.url,
      hostId: listening.hostId,
      kill,
      dispose: async () => {
        await kill();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await kill();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
