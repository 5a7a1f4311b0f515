import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AgentConfig } from './config.js';
import { EXIT, StartupError } from './exit.js';
import { DEFAULT_LOG_LEVEL, LOG_LEVELS, isLogLevel, type LogLevel } from './log-levels.js';

const COMMANDS = ['serve', 'reindex', 'check-config'] as const;
type Command = (typeof COMMANDS)[number];

export type CliOptions =
  | { command: Command; config: AgentConfig; logLevel: LogLevel }
  | { command: 'help' | 'version' };

export const USAGE = `usage: kindling-agent [serve|reindex|check-config] [options]
  serve          run the agent (the default)
  reindex        compare the index with what storage holds and report (never deletes storage)
  check-config   validate the config against this host (volume groups, shares, tools) without serving

options:
  -c, --config FILE     YAML or JSON config (/etc/kindling/agent.yaml under systemd); without it, the embedded
                        default: LevelDB under ./var/kindling and a local-folder share ./var/share
      --host H          listen address (overrides listen.host)
      --port N          listen port, 0 for any free one (overrides listen.port)
      --data-dir DIR    where the index lives (overrides dataDir)
      --token-file F    read the admin token from a file (or set KINDLING_TOKEN); --token T shows it in ps
      --log-level L     ${LOG_LEVELS.join(', ')} (default ${DEFAULT_LOG_LEVEL}); JSON lines on stderr,
                        coloured lines when stderr is a terminal
  -h, --help            this text
  -v, --version         the agent's version`;

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
    const { ConfigError } = await configModule();
    const text = await readFile(file, 'utf8').catch(async (err: unknown) => {
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

  const { ConfigError, DEFAULT_CONFIG, loadConfigFile, parseConfig } = await configModule();
  const raw = (values.config ? await loadConfigFile(values.config) : structuredClone(DEFAULT_CONFIG)) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${values.config}: not a map of settings`);
  const listen = { ...(raw.listen as Record<string, unknown> | undefined) };
  if (values.host !== undefined) listen.host = values.host;
  if (values.port !== undefined) listen.port = Number(values.port);
  raw.listen = listen;
  if (values['data-dir'] !== undefined) raw.dataDir = values['data-dir'];
  const token = await tokenFrom(values);
  if (token !== undefined) raw.token = token;
  // Paths in a config file are relative to the file; flags and the default to the working directory.
  const baseDir = values.config ? dirname(values.config) : cwd;
  return { command: command as Command, config: parseConfig(raw, baseDir), logLevel };
}
