import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { InvalidArgumentError } from '@kindling/sdk';
import { readBytes, readClientConfig, readText, type ClientConfig, type ConfigAgent } from './client-config.js';

/** The connection flags every command takes (commander's camelCase names). */
export interface ConnectionFlags {
  url?: string;
  agents?: string;
  agentsFile?: string;
  /** Of the fleet, this one agent only. */
  agent?: string;
  token?: string;
  tokenFile?: string;
  config?: string;
  timeout?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

/** How long the CLI waits, by kind of wait (see the README's "Timeouts"). */
export interface Timeouts {
  /** Each read and each short change (attach, snapshot create, ...); the SDK caps connect (10 s) and health's probe (5 s) below it. */
  shortMs: number;
  /** Copies and deletes, which take as long as the data is big: 0, none while keepalive sees the link live. */
  longMs: number;
  /** How long a call waits for a dropped link to come back before it is resent (same request id) or given up. */
  linkWaitMs: number;
}

export interface Settings {
  urls: string[];
  /** Many agents asked for (`--agents`, `--agents-file`, `agents:` in the config): fleet output and exit codes. */
  fleet: boolean;
  /** By URL: the token each agent is sent. */
  tokens: Record<string, string | undefined>;
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  timeouts: Timeouts;
}

/** What the process sees: passed in so tests and the bin agree on one source. */
export interface Environment {
  env: NodeJS.ProcessEnv;
  cwd: string;
  home: string;
}

export const processEnvironment = (): Environment => ({ env: process.env, cwd: process.cwd(), home: homedir() });

export const DEFAULT_URL = 'ws://127.0.0.1:8600';
/** Where a local agent keeps the token it generated: the packaged data dir, then the quick start's. */
const LOCAL_TOKEN_FILES = ['/var/lib/kindling/token', 'var/kindling/token'];
/** A read or short change that takes longer is stuck (a hung share): say so rather than hang the script. */
const SHORT_TIMEOUT_MS = 30_000;
/** A link back within a minute was a blip: the call is resent with its request id and the command goes on. */
const LINK_WAIT_MS = 60_000;

/** Flags, then env, then the client config file, then the local agent's own address and token file. */
export function resolveSettings(flags: ConnectionFlags, environment: Environment): Settings {
  const { env, cwd } = environment;
  const config = readClientConfig(flags.config ?? env.KINDLING_CONFIG, environment);
  const flagAgents = agentList(flags, cwd);
  if (flagAgents && flags.url !== undefined) throw new InvalidArgumentError('give either --url or --agents/--agents-file, not both');
  // Flags over env over the config file: an explicit agent list overrides KINDLING_URL, a URL overrides the config's list.
  const explicitUrl = flags.url ?? (flagAgents ? undefined : env.KINDLING_URL);
  const configAgents = explicitUrl === undefined && config.url === undefined ? config.agents : undefined;
  const agents = flagAgents ?? configAgents?.map((a) => a.url);
  const all = agents ?? [explicitUrl ?? config.url ?? DEFAULT_URL];
  if (all.length === 0) throw new InvalidArgumentError('the agent list is empty');
  const twice = all.find((url, i) => all.indexOf(url) !== i);
  if (twice !== undefined) throw new InvalidArgumentError(`the agent ${twice} is listed twice`);
  const urls = pinned(all, flags.agent);
  const { token, forAll } = resolveToken(flags, env, config, urls, cwd);
  const own = (url: string) => configAgents?.find((a) => a.url === url);
  const tokens = Object.fromEntries(urls.map((url) => [url, forAll ? token : (agentToken(own(url), cwd) ?? token)]));
  return { urls, fleet: agents !== undefined, tokens, tls: tlsFiles(flags, env, config, cwd), timeouts: timeouts(flags.timeout) };
}

/** `--agent`: one agent of the list, so that a name means what that agent holds even while others are down. */
function pinned(urls: string[], agent: string | undefined): string[] {
  if (agent === undefined) return urls;
  if (!urls.includes(agent)) throw new InvalidArgumentError(`--agent ${agent} is not one of the agents: ${urls.join(', ')}`);
  return [agent];
}

function agentList(flags: ConnectionFlags, cwd: string): string[] | undefined {
  if (flags.agents !== undefined && flags.agentsFile !== undefined) throw new InvalidArgumentError('give --agents or --agents-file, not both');
  if (flags.agents !== undefined) return splitList(flags.agents.split(','));
  if (flags.agentsFile !== undefined) {
    // One URL a line; blank lines and `#` comments are skipped, so the file can be annotated.
    return splitList(readText(resolve(cwd, flags.agentsFile), '--agents-file').split('\n').map((l) => l.replace(/#.*/, '')));
  }
  return undefined;
}

const splitList = (items: string[]): string[] => items.map((s) => s.trim()).filter((s) => s !== '');

interface ResolvedToken {
  token: string | undefined;
  /** Given by flag or environment: it goes to every agent, over their own in the config. */
  forAll: boolean;
}

function resolveToken(flags: ConnectionFlags, env: NodeJS.ProcessEnv, config: ClientConfig, urls: string[], cwd: string): ResolvedToken {
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw new InvalidArgumentError('give --token or --token-file, not both');
  if (flags.token !== undefined) return { token: flags.token, forAll: true };
  if (flags.tokenFile !== undefined) return { token: fromFile(resolve(cwd, flags.tokenFile), '--token-file'), forAll: true };
  if (env.KINDLING_TOKEN) return { token: env.KINDLING_TOKEN, forAll: true };
  if (env.KINDLING_TOKEN_FILE) return { token: fromFile(resolve(cwd, env.KINDLING_TOKEN_FILE), 'KINDLING_TOKEN_FILE'), forAll: true };
  if (config.token !== undefined) return { token: config.token, forAll: false };
  if (config.tokenFile !== undefined) return { token: fromFile(resolve(cwd, config.tokenFile), 'client config tokenFile'), forAll: false };
  // The local agent's own token goes only to a loopback agent: never hand this host's secret to another.
  if (urls.every(isLoopback)) {
    for (const file of LOCAL_TOKEN_FILES.map((f) => resolve(cwd, f))) {
      if (existsSync(file)) return { token: fromFile(file, file), forAll: false };
    }
  }
  return { token: undefined, forAll: false };
}

function agentToken(agent: ConfigAgent | undefined, cwd: string): string | undefined {
  if (agent?.token !== undefined) return agent.token;
  if (agent?.tokenFile !== undefined) return fromFile(resolve(cwd, agent.tokenFile), `client config tokenFile of ${agent.url}`);
  return undefined;
}

function fromFile(file: string, source: string): string {
  const token = readText(file, source).trim();
  if (token === '') throw new InvalidArgumentError(`the token file ${file} (${source}) is empty`);
  return token;
}

function isLoopback(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

/** PEM files, each from its flag, else KINDLING_CA/CERT/KEY, else the client config. */
function tlsFiles(flags: ConnectionFlags, env: NodeJS.ProcessEnv, config: ClientConfig, cwd: string): Settings['tls'] {
  const tls: Settings['tls'] = {};
  for (const key of ['ca', 'cert', 'key'] as const) {
    const file = flags[key] ?? (env[`KINDLING_${key.toUpperCase()}`] || undefined) ?? config[key];
    if (file !== undefined) tls[key] = readBytes(resolve(cwd, file), `--${key} file`);
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new InvalidArgumentError('give --cert and --key together (a client certificate and its key)');
  return tls;
}

function timeouts(flag: string | undefined): Timeouts {
  if (flag === undefined) return { shortMs: SHORT_TIMEOUT_MS, longMs: 0, linkWaitMs: LINK_WAIT_MS };
  const seconds = Number(flag);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError(`--timeout takes a positive number of seconds, not ${flag}`);
  // One deadline for the whole command, whatever it waits for.
  const ms = seconds * 1000;
  return { shortMs: ms, longMs: ms, linkWaitMs: ms };
}
