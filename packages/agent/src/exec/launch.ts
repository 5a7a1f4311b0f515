import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { lineTap } from './line-tap.js';
import { reaperMark } from './reaper.js';

export interface LaunchOptions {
  /** The command's whole environment (the caller builds a clean one); the reaper's mark is added. */
  env: Record<string, string>;
  onStdoutLine?: ((line: string) => void) | undefined;
  onStderrLine?: ((line: string) => void) | undefined;
}

export interface Exit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Why the program did not start (ENOENT: not installed); exitCode then reads as a shell would say it. */
  startError?: string;
}

export interface Launched {
  pid: number | undefined;
  /** Signals the command's whole process group: it and everything it forked that stayed there. */
  signalGroup(signal: NodeJS.Signals): void;
  /** When the command has exited and its output is all read. */
  exited: Promise<Exit>;
}

/** A shell's exit codes for a program it could not start: not found, not executable. */
const START_EXIT_CODES: Record<string, number> = { ENOENT: 127, EACCES: 126 };

function collect(stream: Readable | null, onLine: ((line: string) => void) | undefined): () => string {
  const chunks: Buffer[] = [];
  const tap = onLine ? lineTap(onLine) : undefined;
  stream?.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    tap?.push(chunk);
  });
  stream?.once('end', () => tap?.end());
  return () => Buffer.concat(chunks).toString('utf8');
}

/**
 * Starts one command with one exec: argv only (no shell), no stdin, in a process group (a session) of its
 * own, to be killed whole and out of reach of a Ctrl-C on the agent's terminal (the agent's to handle as a
 * graceful stop). It carries the reaper's mark, so it dies with the agent (see reaper.ts). A command ended
 * by a signal takes its group with it: on its exit, not its streams' close, since a forked child still
 * holding them would keep those open.
 *
 * Node's own `spawn`, not execa: measured in bench/launch.mjs, execa added 2-3 ms per command over a plain
 * spawn (its per-call abort signal, stream plumbing and option handling), where the budget is ~1 ms; the
 * agent needs only argv, a clean environment, buffered output and line taps, all here.
 */
export function launch(command: readonly string[], options: LaunchOptions): Launched {
  const [file, ...args] = command;
  if (!file) throw new Error('launch: empty command');
  const env = { ...options.env, ...reaperMark(options.env) };
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const signalGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // ESRCH: the group is empty, all gone already.
    }
  };
  child.once('exit', (_code, signal) => {
    if (signal !== null) signalGroup('SIGKILL');
  });
  const stdout = collect(child.stdout, options.onStdoutLine);
  const stderr = collect(child.stderr, options.onStderrLine);
  let startError: NodeJS.ErrnoException | undefined;
  child.once('error', (err) => {
    startError = err;
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      const failed = child.pid === undefined ? startError : undefined;
      resolve({
        exitCode: failed ? (START_EXIT_CODES[failed.code ?? ''] ?? 127) : code,
        signal,
        stdout: stdout(),
        stderr: stderr(),
        ...(failed ? { startError: failed.message } : {}),
      });
    });
  });
  return { pid: child.pid, signalGroup, exited };
}
