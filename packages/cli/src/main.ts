import { CommanderError, type Command } from 'commander';
import { KindlingError } from '@kindling/sdk';
import { EXIT, exitCodeOf } from './exit-codes.js';
import { buildProgram } from './program.js';
import type { Runtime } from './runtime.js';

/** Runs one command line; resolves with the exit status. Never throws: every failure is one line on stderr. */
export async function main(argv: readonly string[], runtime: Runtime): Promise<number> {
  const program = buildProgram(runtime);
  let action: Command | undefined;
  program.hook('preAction', (_program, command) => void (action = command));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return runtime.exitCode;
  } catch (err) {
    // The flag may not have been parsed when the failure came (a usage error): look for it in argv too.
    const debug = program.opts().debug === true || argv.includes('--debug');
    return report(err, debug, runtime, action?.options.some((o) => o.long === '--request-id') === true);
  }
}

function report(err: unknown, debug: boolean, runtime: Runtime, resendable: boolean): number {
  // Commander already printed its one line (unknown option, missing argument) or the help it was asked for.
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (err instanceof KindlingError) {
    runtime.stderr(`error: ${err.code}: ${firstLine(err.message)}\n`);
    const resend = resendHint(err, resendable);
    if (resend) runtime.stderr(resend);
    if (debug) runtime.stderr(debugDetails(err));
    return exitCodeOf(err.code);
  }
  const error = err instanceof Error ? err : new Error(String(err));
  runtime.stderr(`error: ${firstLine(error.message)}\n`);
  if (debug && error.stack) runtime.stderr(error.stack + '\n');
  return EXIT.FAILURE;
}

/**
 * A change whose outcome is unknown (the link or the deadline gave out, the agent may have finished):
 * its request id, always, so that a rerun adopts that outcome instead of doing the work a second time.
 * A placed create names where it went, which the rerun must name too.
 */
function resendHint(err: KindlingError, resendable: boolean): string | null {
  const { requestId, url, backend } = err.details as Record<string, unknown>;
  if ((err.code !== 'UNAVAILABLE' && err.code !== 'TIMEOUT') || typeof requestId !== 'string') return null;
  // A command without --request-id (attach, kv set, ...) cannot adopt it: the id is still worth a look in the agent's log.
  if (!resendable) return `request id: ${requestId} (its outcome is unknown: look before running it again)\n`;
  const where = typeof url === 'string' && typeof backend === 'string' ? ` --url ${url} --backend ${backend}` : '';
  return `request id: ${requestId} (its outcome is unknown: run the same command with${where} --request-id ${requestId} to get it)\n`;
}

const firstLine = (text: string): string => text.split('\n')[0] ?? '';

/**
 * A failed storage command's argv, exit code and stderr tail first: that is what an operator acts on.
 * No stack: an error from the agent was rebuilt in the SDK's receive loop, which says nothing.
 */
function debugDetails(err: KindlingError): string {
  const { command, exitCode, stderrTail, ...rest } = err.details as Record<string, unknown>;
  const lines: string[] = [];
  if (err.message.includes('\n')) lines.push(`message: ${err.message}`);
  if (Array.isArray(command)) lines.push(`command: ${command.map(String).join(' ')}`);
  if (exitCode !== undefined) lines.push(`exit code: ${String(exitCode)}`);
  if (typeof stderrTail === 'string' && stderrTail !== '') lines.push('stderr:', ...stderrTail.trimEnd().split('\n').map((l) => `  ${l}`));
  if (Object.keys(rest).length > 0) lines.push(`details: ${JSON.stringify(rest)}`);
  return lines.join('\n') + '\n';
}
