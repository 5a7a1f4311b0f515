import { parseArgs } from 'node:util';
import { dirname } from 'node:path';
import { DEFAULT_CONFIG, loadConfigFile, parseConfig, type AgentConfig } from './config.js';

export interface CliOptions {
  command: 'serve' | 'reindex';
  config: AgentConfig;
}

export const USAGE = `usage: kindling-agent [reindex] [--config FILE] [--host H] [--port N] [--data-dir DIR] [--token T]
  With no --config, the embedded default: LevelDB under ./var/kindling and a local-folder share ./var/share.
  reindex   compare the index with what storage holds and report (never deletes storage)`;

/** Reads flags and the config file; flags override the file's values. */
export async function readCli(argv: string[], cwd: string): Promise<CliOptions> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      host: { type: 'string' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      token: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) throw new UsageRequested();
  const command = positionals[0] ?? 'serve';
  if (command !== 'serve' && command !== 'reindex') throw new Error(`unknown command ${command}\n${USAGE}`);
  const raw = (values.config ? await loadConfigFile(values.config) : structuredClone(DEFAULT_CONFIG)) as Record<string, unknown>;
  const listen = { ...(raw.listen as Record<string, unknown> | undefined) };
  if (values.host !== undefined) listen.host = values.host;
  if (values.port !== undefined) listen.port = Number(values.port);
  raw.listen = listen;
  if (values['data-dir'] !== undefined) raw.dataDir = values['data-dir'];
  if (values.token !== undefined) raw.token = values.token;
  // Paths in a config file are relative to the file; flags and the default to the working directory.
  const baseDir = values.config ? dirname(values.config) : cwd;
  return { command, config: parseConfig(raw, baseDir) };
}

export class UsageRequested extends Error {}
