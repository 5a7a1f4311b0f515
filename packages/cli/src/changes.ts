import type { Command } from 'commander';
import { InvalidArgumentError } from '@kindling/sdk';
import type { Runtime } from './runtime.js';

/**
 * A command that destroys data takes `--yes`; without it, it asks on a terminal and, with no terminal to
 * ask on (a script), refuses before connecting, so a script states what it means.
 */
export function destructive(command: Command, runtime: Runtime): Command {
  return command
    .option('-y, --yes', 'do not ask: the change is meant (required without a terminal)')
    .hook('preAction', (_self, action) => {
      if (action.opts<{ yes?: boolean }>().yes === true || runtime.stdinIsTTY) return;
      throw new InvalidArgumentError(`${action.parent?.name() ?? 'kindling'} ${action.name()} destroys data: confirm with --yes (no terminal to ask on)`);
    });
}

/** A command whose work is one request that can be asked for again by its id. */
export function resendable(command: Command): Command {
  return command.option('--request-id <id>', 'the request id a failed try printed: get its outcome instead of doing the work twice');
}

export interface ResendFlags {
  requestId?: string;
}
