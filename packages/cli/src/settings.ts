import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from '@kindling/sdk';
import { parse as parseYaml } from 'yaml';

/** The connection flags every command takes (commander's camelCase names). */
export interface ConnectionFlags {
  url?: string;
  agents?: string;
  agentsFile?: string;
  token?: string;
  tokenFile?: string;
  config?: string;
  timeout?: string;
}

export interface Settings {
  urls: string[];
  /** Many agents asked for (`--agents`, `--agents-file`, `agents:` in the config): fleet output and exit codes. */
  fleet: boolean;
  token: string | undefined;
  timeoutMs: number;
  /** Where the token came from, for `--debug` (never the token itself). */
  tokenSource: string;
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
const CONFIG_KEYS = ['url', 'agents', 'token', 'tokenFile'] as const;
/** Long copies on real storage take a while: one request waits up to an hour unless told otherwise. */
const DEFAULT_TIMEOUT_S = 3600;

interface ClientConfig {
  url?: string;
  agents?: string[];
  token?: string;
  tokenFile?: string;
}

/** Flags, then env, then the client config file, then the local agent's own address and token file. */
export function resolveSettings(flags: ConnectionFlags, environment: Environment): Settings {
  const { env, cwd } = environment;
  const config = readClientConfig(flags.config ?? env.KINDLING_CONFIG, environment);
  const flagAgents = agentList(flags, cwd);
  if (flagAgents && flags.url !== undefined) throw new InvalidArgumentError('give either --url or --agents/--agents-file, not both');
  // Flags over env over the config file: an explicit agent list overrides KINDLING_URL, a URL overrides the config's list.
  const explicitUrl = flags.url ?? (flagAgents ? undefined : env.KINDLING_URL);
  const agents = flagAgents ?? (explicitUrl === undefined && config.url === undefined ? config.agents : undefined);
  const urls = agents ?? [explicitUrl ?? config.url ?? DEFAULT_URL];
  if (urls.length === 0) throw new InvalidArgumentError('the agent list is empty');
  const { token, tokenSource } = resolveToken(flags, env, config, urls, cwd);
  return { urls, fleet: agents !== undefined, token, tokenSource, timeoutMs: timeoutMs(flags.timeout) };
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

function resolveToken(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv,
  config: ClientConfig,
  urls: string[],
  cwd: string,
): { token: string | undefined; tokenSource: string } {
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw new InvalidArgumentError('give --token or --token-file, not both');
  if (flags.token !== undefined) return { token: flags.token, tokenSource: '--token' };
  if (flags.tokenFile !== undefined) return fromFile(resolve(cwd, flags.tokenFile), '--token-file');
  if (env.KINDLING_TOKEN) return { token: env.KINDLING_TOKEN, tokenSource: 'KINDLING_TOKEN' };
  if (env.KINDLING_TOKEN_FILE) return fromFile(resolve(cwd, env.KINDLING_TOKEN_FILE), 'KINDLING_TOKEN_FILE');
  if (config.token !== undefined) return { token: config.token, tokenSource: 'client config token' };
  if (config.tokenFile !== undefined) return fromFile(resolve(cwd, config.tokenFile), 'client config tokenFile');
  // The local agent's own token goes only to a loopback agent: never hand this host's secret to another.
  if (urls.every(isLoopback)) {
    for (const file of LOCAL_TOKEN_FILES.map((f) => resolve(cwd, f))) {
      if (existsSync(file)) return fromFile(file, file);
    }
  }
  return { token: undefined, tokenSource: 'none' };
}

function fromFile(file: string, source: string): { token: string; tokenSource: string } {
  const token = readText(file, source).trim();
  if (token === '') throw new InvalidArgumentError(`the token file ${file} (${source}) is empty`);
  return { token, tokenSource: `${source} (${file})` };
}

function isLoopback(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

function timeoutMs(flag: string | undefined): number {
  if (flag === undefined) return DEFAULT_TIMEOUT_S * 1000;
  const seconds = Number(flag);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError(`--timeout takes a positive number of seconds, not ${flag}`);
  return seconds * 1000;
}

/** `--config`/KINDLING_CONFIG must exist; the default `~/.config/kindling/client.yaml` may be absent. */
function readClientConfig(explicit: string | undefined, { env, cwd, home }: Environment): ClientConfig {
  const file = explicit !== undefined ? resolve(cwd, explicit) : join(env.XDG_CONFIG_HOME || join(home, '.config'), 'kindling', 'client.yaml');
  if (explicit === undefined && !existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = parseYaml(readText(file, 'client config'));
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(`the client config ${file} is not valid YAML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  return checkConfig(parsed ?? {}, file);
}

function checkConfig(parsed: unknown, file: string): ClientConfig {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError(`the client config ${file} is not a mapping`);
  const entries = parsed as Record<string, unknown>;
  const unknown = Object.keys(entries).filter((k) => !(CONFIG_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new InvalidArgumentError(`the client config ${file} has unknown keys: ${unknown.join(', ')} (known: ${CONFIG_KEYS.join(', ')})`);
  const config: ClientConfig = {};
  for (const key of ['url', 'token', 'tokenFile'] as const) {
    const value = entries[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new InvalidArgumentError(`the client config ${file}: ${key} must be a string`);
    config[key] = value;
  }
  if (entries.url !== undefined && entries.agents !== undefined) throw new InvalidArgumentError(`the client config ${file} has both url and agents: keep one`);
  if (entries.agents !== undefined) {
    if (!Array.isArray(entries.agents) || !entries.agents.every((a): a is string => typeof a === 'string')) {
      throw new InvalidArgumentError(`the client config ${file}: agents must be a list of URLs`);
    }
    config.agents = entries.agents;
  }
  return config;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    throw new InvalidArgumentError(`cannot read ${what} ${file}: ${reason}`);
  }
}
