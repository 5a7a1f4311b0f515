import type { Command } from 'commander';
import { InvalidArgumentError } from '@kindling/sdk';
import { EXIT } from './exit-codes.js';
import { FORMATS, Output, type Format } from './output.js';
import { Scope } from './scope.js';
import { resolveSettings, type ConnectionFlags, type Environment } from './settings.js';

/** The process as the CLI sees it; the bin passes the real one. */
export interface Runtime {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Progress bars only where someone watches. */
  stderrIsTTY: boolean;
  /** Someone to ask before destroying data. */
  stdinIsTTY: boolean;
  /** Asks on the terminal; resolves with the answer. */
  ask(question: string): Promise<string>;
  environment: Environment;
  /** Set by a command that printed a result but not all of it (a fleet with agents down). */
  exitCode: number;
}

/** The options every command takes, from the root program. */
export interface GlobalFlags extends ConnectionFlags {
  json?: boolean;
  output?: string;
  debug?: boolean;
  progress?: boolean;
  showSecrets?: boolean;
}

export function outputFormat(flags: GlobalFlags): Format {
  const asked = flags.output ?? (flags.json ? 'json' : 'table');
  if (!(FORMATS as readonly string[]).includes(asked)) throw new InvalidArgumentError(`-o takes ${FORMATS.join(', ')}, not ${asked}`);
  if (flags.json && asked !== 'json') throw new InvalidArgumentError(`--json and -o ${asked} disagree`);
  return asked as Format;
}

/**
 * A commander action that connects as the global flags say, runs `fn` with the command's positional
 * arguments and options, and always hangs up. Failures propagate to `main`, which reports them.
 */
export function act<O>(runtime: Runtime, fn: (scope: Scope, args: string[], opts: O) => Promise<void>) {
  return async (...params: unknown[]): Promise<void> => {
    const command = params.at(-1) as Command;
    const flags = command.optsWithGlobals<GlobalFlags>();
    const out = new Output(outputFormat(flags), runtime.stdout);
    const settings = resolveSettings(flags, runtime.environment);
    const warn = (line: string) => runtime.stderr(line + '\n');
    const scope = await Scope.open(settings, {
      out,
      progress: runtime.stderrIsTTY && flags.progress !== false,
      showSecrets: flags.showSecrets === true,
      warn,
      ask: runtime.ask,
    });
    try {
      await fn(scope, command.args, command.opts() as O);
      if (scope.partial) runtime.exitCode = EXIT.PARTIAL;
    } finally {
      await scope.close();
    }
  };
}
