import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { killTree } from './process-tree.js';

/** The built daemon next to this module (dist/testing -> dist/bin.js). */
export const AGENT_BIN = resolve(import.meta.dirname, '../bin.js');

export interface AgentProcess {
  url: string;
  port: number;
  hostId: string;
  dir: string;
  config: Record<string, unknown>;
  child: ChildProcess;
  stderr(): string;
  /** Resolves once stderr holds `text` (or matches it): the storage check after ready logs as it goes. */
  logged(text: string | RegExp): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL of the agent alone: a crash, mid-operation if need be; its children are left to their fate. */
  kill(): Promise<void>;
  /** SIGKILL of the agent and every process under it, together: the commands it was running die with it. */
  killGroup(): Promise<void>;
  /** Start again on the same data dir and config; `env` replaces the extra environment (crash tests). */
  restart(env?: Record<string, string>): Promise<AgentProcess>;
  /** Stop and remove the temp folder. */
  dispose(): Promise<void>;
}

export interface AgentOptions {
  /** Backends; default: one NFS backend `nfs` on a local-folder share in the temp dir. */
  backends?: (dir: string) => unknown[];
  /**
   * The agent's token: default TEST_TOKEN (which test/support puts in KINDLING_TOKEN, where the SDK and the
   * CLI look); null configures none, so the agent makes its own in <dataDir>/token.
   */
  token?: string | null;
  host?: string;
  /** Default 0: any free port (a fleet given a host's URL before it starts needs a fixed one). */
  port?: number;
  /** Run the agent inside this network namespace (`ip netns exec`, which execs in place). */
  netns?: string;
  dir?: string;
  /** More config keys (tls, readTokens, limits, ...), laid over the defaults. */
  config?: Record<string, unknown>;
  /** More command-line flags (`--log-level info`). */
  args?: string[];
  /** Folders put first on the agent's PATH (crash-injection shims): the agent's commands inherit its PATH. */
  pathPrefix?: string[];
  /** More environment for the agent (fault points: `KINDLING_NFS_FAULT`). */
  env?: Record<string, string>;
}

/** The token test agents get unless a test gives another (or null). */
export const TEST_TOKEN = 'kindling-test-token-0123456789abcdef';

/** Starts a real `kindling-agent` process on a free loopback port with its own data dir and share. */
export async function startAgentProcess(options: AgentOptions = {}): Promise<AgentProcess> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'kindling-agent-')));
  const config = {
    listen: { host: options.host ?? '127.0.0.1', port: options.port ?? 0 },
    dataDir: join(dir, 'data'),
    ...(options.token === null ? {} : { token: options.token ?? TEST_TOKEN }),
    // Test hosts in network namespaces are on veth pairs made for the test: no TLS needed there.
    ...(options.host && options.host !== '127.0.0.1' ? { allowPlaintext: true } : {}),
    backends: options.backends?.(dir) ?? [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'qcow2' }],
    ...options.config,
  };
  // The share folders exist, as an operator makes them: the agent refuses a missing one.
  for (const backend of config.backends as { driver?: string; shares?: string[] }[]) {
    if (backend.driver !== 'nfs') continue;
    for (const share of backend.shares ?? []) if (share.startsWith('/')) await mkdir(share, { recursive: true });
  }
  const configFile = join(dir, 'agent.json');
  await writeFile(configFile, JSON.stringify(config));
  return launch(dir, configFile, config, options);
}

async function launch(dir: string, configFile: string, config: Record<string, unknown>, options: AgentOptions): Promise<AgentProcess> {
  const argv = [process.execPath, AGENT_BIN, '--config', configFile, ...(options.args ?? [])];
  const [command, ...args] = options.netns ? ['ip', 'netns', 'exec', options.netns, ...argv] : argv;
  const path = [...(options.pathPrefix ?? []), process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':');
  // The test process's KINDLING_TOKEN is for clients: the agent takes its token from its config only.
  const { KINDLING_TOKEN: _client, KINDLING_TOKEN_FILE: _clientFile, ...env } = process.env;
  const child = spawn(command as string, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, ...options.env, PATH: path } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const listening = await new Promise<{ url: string; port: number; hostId: string }>((res, rej) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => rej(new Error(`agent did not start in 20 s:\n${stderr}`)), 20_000);
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { event?: string; url: string; port: number; hostId: string };
        if (msg.event === 'listening') {
          clearTimeout(timer);
          res(msg);
        }
      } catch {
        // Not a status line.
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`agent exited with ${code} before listening:\n${stderr}`));
    });
  });
  const signal = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    await exited;
  };
  const proc: AgentProcess = {
    ...listening,
    dir,
    config,
    child,
    stderr: () => stderr,
    logged: async (text) => {
      const seen = () => (typeof text === 'string' ? stderr.includes(text) : text.test(stderr));
      while (!seen()) await new Promise((resolve) => setTimeout(resolve, 50));
    },
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
    killGroup: async () => {
      if (child.exitCode === null && child.signalCode === null) await killTree(child.pid!);
      await exited;
    },
    restart: async (nextEnv) => {
      await signal('SIGTERM');
      return launch(dir, configFile, config, nextEnv === undefined ? options : { ...options, env: nextEnv });
    },
    dispose: async () => {
      await signal('SIGTERM');
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
  return proc;
}
