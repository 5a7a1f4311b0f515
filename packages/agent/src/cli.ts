import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AgentConfig } from './config.js';
import { EXIT, StartupError } from './exit.js';
import { DEFAULT_LOG_LEVEL, LOG_LEVELS, isLogLevel, type LogLevel } from './log-levels.js';

const COMMANDS = ['serve', 'reindex', 'check-config'] as const;
type Command = (typeof COMMANDS)[number];

/** check-config lists config mistakes beside the host checks, so it takes a config that may not parse. */
export interface CheckInput {
  command: 'check-config';
  config: AgentConfig | undefined;
  problems: string[];
  /** The drivers the config names, parsed or not: which tools to look for. */
  drivers: string[];
  logLevel: LogLevel;
}

export type CliOptions =
  | { command: Exclude<Command, 'check-config'>; config: AgentConfig; logLevel: LogLevel }
  | CheckInput
  | { command: 'help' | 'version' };


const usageError = (message: string): StartupError => new StartupError(`${message} (see kindling-agent --help)`, EXIT.USAGE);

// The config parser (yaml, valibot) and the protocol package load only past --help and --version, which
// then answer in about the time of a bare `node` (issue 20).
const configModule = () => import('./config.js');
const messageOf = async (err: unknown): Promise<string> => (await import('@kindling/protocol')).messageOf(err);

/** The admin token: a flag beats the file, the file beats KINDLING_TOKEN, which beats the config file. */
async function tokenFrom(values: { token?: string | undefined; 'token-file'?: string | undefined }): Promise<string | undefined> {
  if (values.token !== undefined) return values.token;
  const file = values['token-file'];
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch(async (err: unknown) => {
      const { ConfigError } = await configModule();
      throw new ConfigError(`cannot read token file ${file}: ${await messageOf(err)}`);
    });
    return text.trim();
  }
  return process.env.KINDLING_TOKEN || undefined;
}

/** Reads flags and the config file; flags override the file's values. */
export async function readCli(argv: string[], cwd: string): Promise<CliOptions> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        host: { type: 'string' },
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    // node's own wording ("Unknown option '--x'. To specify a positional argument ...") is already one line.
    // node's own wording ("Unknown option '--x'. To specify a positional argument ...") is already one line.
    const message = await messageOf(err);
    throw usageError(message.split('. ')[0] ?? message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help' };
  if (values.version) return { command: 'version' };
  const [command = 'serve', ...extra] = positionals;
  if (!(COMMANDS as readonly string[]).includes(command)) throw usageError(`unknown command ${command}`);
  if (extra.length) throw usageError(`unexpected argument ${extra[0]}`);
  const logLevel = values['log-level'] ?? DEFAULT_LOG_LEVEL;
  if (!isLogLevel(logLevel)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  if (values.port !== undefined && !/^\d+$/.test(values.port)) throw usageError(`--port must be a number, not ${values.port}`);

  const { ConfigError, parseConfig } = await configModule();
  // check-config collects each config mistake as a problem and goes on; any other command stops at the first.
  const problems: string[] = [];
  const step = async <T>(f: () => Promise<T> | T): Promise<T | undefined> => {
    try {
      return await f();
    } catch (err) {
      if (command !== 'check-config' || !(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
      return undefined;
    }
  };
  const raw = await step(() => rawConfig(values, cwd));
  const token = await step(() => tokenFrom(values));
  if (raw && token !== undefined) raw.token = token;
  // Paths in a config file are relative to the file; flags and the default to the working directory.
  const baseDir = values.config ? dirname(values.config) : cwd;
  const config = raw && (await step(() => parseConfig(raw, baseDir)));
  if (command === 'check-config') {
    const backends = Array.isArray(raw?.backends) ? (raw.backends as unknown[]) : [];
    const drivers = backends.map((b) => (b as { driver?: unknown } | null)?.driver).filter((d): d is string => typeof d === 'string');
    return { command, config, problems, drivers, logLevel };
  }
  // Outside check-config every step above throws, so a config is here.
  return { command: command as Exclude<Command, 'check-config'>, config: config!, logLevel };
}

/** The config file (or the embedded default) with the flags laid over it, not yet validated. */
async function rawConfig(values: { config?: string | undefined; host?: string | undefined; port?: string | undefined; 'data-dir'?: string | undefined }, cwd: string) {
  const { ConfigError, DEFAULT_CONFIG, loadConfigFile } = await configModule();
  const raw = (values.config ? await loadConfigFile(values.config) : structuredClone(DEFAULT_CONFIG)) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${values.config ?? cwd}: not a map of settings`);
  const listen = { ...(raw.listen as Record<string, unknown> | undefined) };
  if (values.host !== undefined) listen.host = values.host;
  if (values.port !== undefined) listen.port = Number(values.port);
  raw.listen = listen;
  if (values['data-dir'] !== undefined) raw.dataDir = values['data-dir'];
  return raw;
}
