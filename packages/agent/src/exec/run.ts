import { spawn } from 'node:child_process';
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

/**
 * Runs argv (no shell); failure is a BackendError carrying the command line, exit code and stderr
 * tail. Plain `spawn`, not execa: execa's stream machinery costs 1-3 ms per command here, which is
 * most of what the agent may add to a create (bench/run.mjs).
 */
export const run: Runner = (command, options = {}) =>
  new Promise<RunResult>((resolve, reject) => {
    const [file, ...args] = command;
    if (!file) throw new Error('run: empty command');
    const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const child = spawn(file, args, {
      env: { ...baseEnv(), ...options.env },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeout);
    const fail = (exitCode: number | null, why: string) => {
      const stderrText = Buffer.concat(stderr).toString();
      const details = { command: [...command], exitCode, stderrTail: stderrText.slice(-STDERR_TAIL).trim() || why };
      if (timedOut) return reject(new TimeoutError(`${file} timed out after ${timeout} ms`, details));
      const last = details.stderrTail.split('\n').filter(Boolean).at(-1) ?? why;
      reject(new BackendError(`${file} failed (exit ${exitCode ?? 'signal'}): ${last}`, details));
    };
    child.once('error', (err) => {
      clearTimeout(timer);
      fail(null, err.message);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() });
      else fail(code, signal ? `killed by ${signal}` : `exit ${code}`);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
