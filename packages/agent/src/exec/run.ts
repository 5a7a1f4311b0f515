import { execa } from 'execa';
import { BackendError, TimeoutError } from '@kindling/protocol';

export interface RunOptions {
  /** Added to a clean base environment (PATH, LC_ALL=C); never the agent's whole environment. */
  env?: Record<string, string>;
  timeoutMs?: number;
  input?: string;
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A command runner; drivers take one so tests can record argv without a shell ever being involved. */
export type Runner = (command: readonly string[], options?: RunOptions) => Promise<RunResult>;

const DEFAULT_TIMEOUT_MS = 120_000;
const STDERR_TAIL = 2000;

const baseEnv = (): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C',
});

/** Runs argv (no shell); failure is a BackendError carrying the command line, exit code and stderr tail. */
export const run: Runner = async (command, options = {}) => {
  const [file, ...args] = command;
  if (!file) throw new Error('run: empty command');
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const result = await execa(file, args, {
    env: { ...baseEnv(), ...options.env },
    extendEnv: false,
    timeout,
    reject: false,
    stripFinalNewline: false,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
    ...(options.signal ? { cancelSignal: options.signal } : {}),
  });
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  if (!result.failed) return { stdout, stderr };
  const details = {
    command: [...command],
    exitCode: result.exitCode ?? null,
    stderrTail: stderr.slice(-STDERR_TAIL).trim(),
  };
  if (result.timedOut) throw new TimeoutError(`${file} timed out after ${timeout} ms`, details);
  const why = details.stderrTail.split('\n').filter(Boolean).at(-1) ?? result.shortMessage;
  throw new BackendError(`${file} failed (exit ${details.exitCode ?? 'signal'}): ${why}`, details);
};
