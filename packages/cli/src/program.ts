import { Command, Option } from 'commander';
import { backendCommand } from './commands/backend.js';
import { healthCommand } from './commands/health.js';
import { kvCommand } from './commands/kv.js';
import { snapshotCommand } from './commands/snapshot.js';
import { volumeCommand } from './commands/volume.js';
import { FORMATS } from './output.js';
import type { Runtime } from './runtime.js';
import { VERSION } from './version.js';

export function buildProgram(runtime: Runtime): Command {
  const program = new Command('kindling')
    .description('Manage Kindling volumes and snapshots on one agent or a fleet.')
    .version(VERSION, '-V, --version')
    .option('--url <url>', 'the agent (env KINDLING_URL; default ws://127.0.0.1:8600)')
    .option('--agents <urls>', 'a fleet: agent URLs, comma-separated')
    .option('--agents-file <file>', 'a fleet: agent URLs, one a line')
    .option('--agent <url>', 'of the fleet, this agent only: a name then means what it holds, even while others are down')
    .option('--token <token>', 'bearer token (env KINDLING_TOKEN; visible in ps: prefer --token-file)')
    .option('--token-file <file>', 'read the token from FILE (env KINDLING_TOKEN_FILE)')
    .option('--config <file>', 'client config (env KINDLING_CONFIG; default ~/.config/kindling/client.yaml)')
    .option('--ca <file>', 'CA certificate(s) the agent\'s TLS certificate must chain to, PEM (env KINDLING_CA)')
    .option('--cert <file>', 'this client\'s TLS certificate, PEM, for an agent that asks for one (env KINDLING_CERT)')
    .option('--key <file>', 'the key of --cert, PEM (env KINDLING_KEY)')
    .option('--timeout <seconds>', 'the whole command\'s deadline (default: 30 s per read or short change, none for copies while the link lives)')
    .option('--json', 'print JSON (same as -o json)')
    .addOption(new Option('-o, --output <format>', 'table, json or jsonl').choices(FORMATS))
    .option('--no-progress', 'no progress bars (drawn only on a terminal anyway)')
    .option('--show-secrets', 'print credentials in connection info (CHAP user and password); left out by default')
    .option('--debug', 'on failure, print the details: the failed command line, its stderr')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ writeOut: runtime.stdout, writeErr: runtime.stderr });
  for (const command of [volumeCommand, snapshotCommand, backendCommand, kvCommand, healthCommand]) {
    program.addCommand(command(runtime));
  }
  // Subcommands do not inherit these from the root: set them on each, so a usage error anywhere exits 2, not 1.
  const configure = (c: Command): void => {
    c.exitOverride().configureOutput({ writeOut: runtime.stdout, writeErr: runtime.stderr }).showSuggestionAfterError();
    c.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}
