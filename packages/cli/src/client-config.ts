import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from '@kindling/sdk';
import { parse as parseYaml } from 'yaml';
import type { Environment } from './settings.js';

/** One agent of a fleet in the client config: its URL, and its own token when agents do not share one. */
export interface ConfigAgent {
  url: string;
  token?: string;
  tokenFile?: string;
}

/** `~/.config/kindling/client.yaml`, checked: every key known, every value of its type. */
export interface ClientConfig {
  url?: string;
  agents?: ConfigAgent[];
  token?: string;
  tokenFile?: string;
  /** PEM files for wss:// with a private CA or mutual TLS. */
  ca?: string;
  cert?: string;
  key?: string;
}

const CONFIG_KEYS = ['url', 'agents', 'token', 'tokenFile', 'ca', 'cert', 'key'] as const;
const AGENT_KEYS = ['url', 'token', 'tokenFile'] as const;

/**
 * `--config`/KINDLING_CONFIG must exist; the default `~/.config/kindling/client.yaml` may be absent.
 * An empty `--config`/KINDLING_CONFIG means no config file at all (not the current folder).
 */
export function readClientConfig(explicit: string | undefined, { env, cwd, home }: Environment): ClientConfig {
  if (explicit === '') return {};
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

function checkKeys(entries: object, known: readonly string[], where: string): void {
  const unknown = Object.keys(entries).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new InvalidArgumentError(`${where} has unknown keys: ${unknown.join(', ')} (known: ${known.join(', ')})`);
}

function strings<K extends string>(entries: Record<string, unknown>, keys: readonly K[], where: string): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const key of keys) {
    const value = entries[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new InvalidArgumentError(`${where}: ${key} must be a string`);
    out[key] = value;
  }
  return out;
}

const isMapping = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function checkConfig(parsed: unknown, file: string): ClientConfig {
  const where = `the client config ${file}`;
  if (!isMapping(parsed)) throw new InvalidArgumentError(`${where} is not a mapping`);
  checkKeys(parsed, CONFIG_KEYS, where);
  const config: ClientConfig = strings(parsed, ['url', 'token', 'tokenFile', 'ca', 'cert', 'key'], where);
  if (parsed.url !== undefined && parsed.agents !== undefined) throw new InvalidArgumentError(`${where} has both url and agents: keep one`);
  if (parsed.agents !== undefined) {
    if (!Array.isArray(parsed.agents)) throw new InvalidArgumentError(`${where}: agents must be a list of URLs`);
    config.agents = parsed.agents.map((entry: unknown, i) => {
      // A bare URL, or { url, token | tokenFile } for an agent with a token of its own.
      if (typeof entry === 'string') return { url: entry };
      const at = `${where}: agents[${i}]`;
      if (!isMapping(entry)) throw new InvalidArgumentError(`${at} must be a URL or a mapping with url`);
      checkKeys(entry, AGENT_KEYS, at);
      const agent = strings(entry, AGENT_KEYS, at);
      if (agent.url === undefined) throw new InvalidArgumentError(`${at} has no url`);
      if (agent.token !== undefined && agent.tokenFile !== undefined) throw new InvalidArgumentError(`${at} has both token and tokenFile: keep one`);
      return { ...agent, url: agent.url };
    });
  }
  return config;
}

export function readText(file: string, what: string): string {
  return readBytes(file, what).toString('utf8');
}

export function readBytes(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    throw new InvalidArgumentError(`cannot read ${what} ${file}: ${reason}`);
  }
}
