import { execa } from 'execa';
import { BackendError, TimeoutError } from '@kindling/protocol';
import { requestCost } from '../cost.js';
import { Children } from './children.js';
import { lineTap } from './line-tap.js';
import { log } from '../log.js';
import { currentRequest } from '../request-context.js';

export interface RunOptions {
  /** Added to a clean base environment (PATH, LC_ALL=C); never the agent's whole environment. */
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Each output line as it arrives; a `\r` ends a line too, as progress meters (`qemu-img -p`, `dd`) redraw with it. */
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
  /** A long data copy (qemu-img convert or commit, dd): it waits for one of the fewer copy slots too. */
  copy?: boolean;
  /**
   * A failure the caller expects and takes as an answer (a probe for an LV that may be missing): still
   * thrown, but logged at debug, since an operator has nothing to act on.
   */
  expected?: (stderr: string) => boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A command runner; drivers take one so tests can record argv without a shell ever being involved. */
export type Runner = (command: readonly string[], options?: RunOptions) => Promise<RunResult>;

const DEFAULT_TIMEOUT_MS = 120_000;
/** After SIGTERM (timeout or stop), how long a command may take to exit before SIGKILL. */
const FORCE_KILL_MS = 2000;
const STDERR_TAIL = 2000;

/**
 * No process a command starts outlives the agent, however the agent dies (a SIGKILL cannot be caught
 * to clean up), and forked ones included (`mount` forks `mount.nfs`). Each command runs in its own
 * process group (`detached`) under coreutils' `timeout`, with no time limit of its own: the parent-death
 * signal (set by setpriv, which execs in place) is SIGALRM, which `timeout` reads as its time being up
 * and answers by sending `--signal` (SIGKILL) to the command and to its whole process group. A
 * parent-death signal set on the command itself would reach it alone: a forked child does not inherit it.
 * PR_SET_PDEATHSIG fires when the forking *thread* exits: Node forks from its main thread (checked
 * with strace on Node 20), which lives as long as the process.
 */
const DIE_WITH_AGENT = ['setpriv', '--pdeathsig', 'ALRM', '--', 'timeout', '--signal', 'KILL', '0'] as const;
/** The programs every command runs under, which `check-config` looks for. */
export const WRAPPER_TOOLS = ['setpriv', 'timeout'] as const;

/** Ends every process left in a command's group: a forked child that outlived its parent's kill. */
const killGroup = (pgid: number | undefined): void => {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // ESRCH: the group is empty, all gone already.
  }
};

const baseEnv = (): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C',
});

/**
 * A runner whose commands `children` tracks: argv only (no shell), a clean environment, a timeout
 * that kills; a failure is a BackendError carrying the command line, exit code and stderr tail.
 */
export function createRunner(children: Children): Runner {
  return async (command, options = {}) => {
    const [file] = command;
    if (!file) throw new Error('run: empty command');
    const failure = (exitCode: number | null, stderrTail: string) => ({ command: [...command], exitCode, stderrTail });
    const stopping = () => new BackendError(`${file} not started: the agent is stopping`, failure(null, 'the agent is stopping'));
    if (children.ended) throw stopping();
    // The wait for a slot does not count against the command's own timeout.
    const release = await children.slot(options.copy === true);
    if (children.ended) {
      release();
      throw stopping();
    }
    const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const cost = requestCost();
    const launching = performance.now();
    const subprocess = execa(DIE_WITH_AGENT[0], [...DIE_WITH_AGENT.slice(1), ...command], {
      env: { ...baseEnv(), ...options.env },
      extendEnv: false,
      stdin: 'ignore',
      stdout: options.onStdoutLine ? [lineTap(options.onStdoutLine), 'pipe'] : 'pipe',
      stderr: options.onStderrLine ? [lineTap(options.onStderrLine), 'pipe'] : 'pipe',
      stripFinalNewline: false,
      // Its own process group, to be killed whole, and out of reach of a Ctrl-C on the agent's terminal
      // (the agent's to handle as a graceful stop).
      detached: true,
      timeout,
      killSignal: 'SIGTERM',
      forceKillAfterDelay: FORCE_KILL_MS,
      // The parent-death signal covers every way the agent exits; execa's exit hook would only add a listener per call.
      cleanup: false,
      reject: false,
    });
    // A command ended by a signal (a timeout, a stop) takes what it forked with it: `timeout` passes a
    // SIGTERM on to its group, but the SIGKILL after the grace period reaches the group's leader alone.
    // On its exit, not its streams' close: a forked child still holding them would keep those open.
    subprocess.once('exit', (_code, signal) => {
      if (signal !== null) killGroup(subprocess.pid);
    });
    // Launch: until the wrapper runs; command: from there to its exit (wrappers' execs included).
    let running = launching;
    if (cost) {
      cost.commands++;
      subprocess.once('spawn', () => {
        cost.add('launch', launching);
        running = performance.now();
      });
      subprocess.once('exit', () => cost.add('command', running));
    }
    const forget = children.add(subprocess);
    const result = await subprocess.finally(() => {
      forget();
      release();
    });
    const { stdout, stderr } = result;
    if (!result.failed) return { stdout, stderr };
    const exitCode = result.exitCode ?? null;
    const cause: unknown = result.cause;
    const why = result.isTerminated
      ? children.ended
        ? 'ended: the agent is stopping'
        : `killed by ${result.signal}`
      : cause instanceof Error
        ? cause.message
        : `exit ${exitCode}`;
    const details = failure(exitCode, stderr.slice(-STDERR_TAIL).trim() || why);
    // A signal says more than the last words of the command it cut short.
    const last = result.isTerminated ? why : (details.stderrTail.split('\n').filter(Boolean).at(-1) ?? why);
    const message = result.timedOut ? `${file} timed out after ${timeout} ms` : `${file} failed (exit ${exitCode ?? 'signal'}): ${last}`;
    // Every failed storage command is logged whole, whoever catches the error (a retry, a cleanup) and whatever it tells the client.
    // With the request it ran for, so `jq 'select(.requestId==…)'` finds it beside the request's own line.
    const request = currentRequest();
    const fields = { command, exitCode, signal: result.signal ?? null, timedOut: result.timedOut, stderrTail: details.stderrTail };
    const level = !result.isTerminated && options.expected?.(stderr) ? 'debug' : 'warn';
    log[level]({ ...(request ? { requestId: request.requestId, op: request.op } : {}), ...fields }, message);
    if (result.timedOut) throw new TimeoutError(message, details);
    throw new BackendError(message, details);
  };
}

/** The default runner, for one agent per process. */
export const run: Runner = createRunner(new Children());
