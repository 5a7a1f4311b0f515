import { BackendError, TimeoutError } from '@kindling/protocol';
import { requestCost } from '../cost.js';
import { Children } from './children.js';
import { launch } from './launch.js';
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

/** Where commands are looked for: the agent's PATH, which they also get. */
export const commandPath = (): string => process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';

const baseEnv = (): Record<string, string> => ({ PATH: commandPath(), LC_ALL: 'C' });

/**
 * A runner whose commands `children` tracks: argv only (no shell), a clean environment, a timeout
 * that kills the command's whole group; a failure is a BackendError carrying the command line, exit
 * code and stderr tail. Each command is one exec (launch.ts); the reaper ends it if the agent dies.
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
    const child = launch(command, { env: { ...baseEnv(), ...options.env }, onStdoutLine: options.onStdoutLine, onStderrLine: options.onStderrLine });
    // Launch: until spawn returns (the command has been exec'd); command: from there to its exit.
    const running = performance.now();
    if (cost) {
      cost.commands++;
      cost.add('launch', launching);
    }
    // A timeout or a stop asks the whole group to end, then forces it; the force waits for the output
    // to close, not the leader's exit: a forked child that ignored SIGTERM may still hold it.
    let force: NodeJS.Timeout | undefined;
    let ending: 'timeout' | 'stop' | undefined;
    const end = (why: 'timeout' | 'stop') => {
      ending ??= why;
      child.signalGroup('SIGTERM');
      force ??= setTimeout(() => child.signalGroup('SIGKILL'), FORCE_KILL_MS);
    };
    // 0: no time limit (a copy at an unbounded speed floor).
    const timer = timeout > 0 ? setTimeout(() => end('timeout'), timeout) : undefined;
    const forget = children.add({ kill: () => end('stop') });
    const result = await child.exited.finally(() => {
      clearTimeout(timer);
      clearTimeout(force);
      forget();
      release();
    });
    cost?.add('command', running);
    const { stdout, stderr, exitCode, signal } = result;
    if (exitCode === 0) return { stdout, stderr };
    const timedOut = ending === 'timeout';
    const why =
      signal !== null
        ? ending === 'stop'
          ? 'ended: the agent is stopping'
          : `killed by ${signal}`
        : (result.startError ?? `exit ${exitCode}`);
    const details = failure(exitCode, stderr.slice(-STDERR_TAIL).trim() || why);
    // A signal says more than the last words of the command it cut short.
    const last = signal !== null ? why : (details.stderrTail.split('\n').filter(Boolean).at(-1) ?? why);
    const message = timedOut ? `${file} timed out after ${timeout} ms` : `${file} failed (exit ${exitCode ?? 'signal'}): ${last}`;
    // Every failed storage command is logged whole, whoever catches the error (a retry, a cleanup) and whatever it tells the client.
    // With the request it ran for, so `jq 'select(.requestId==…)'` finds it beside the request's own line.
    const request = currentRequest();
    const fields = { command, exitCode, signal, timedOut, stderrTail: details.stderrTail };
    const level = signal === null && options.expected?.(stderr) ? 'debug' : 'warn';
    log[level]({ ...(request ? { requestId: request.requestId, op: request.op } : {}), ...fields }, message);
    if (timedOut) throw new TimeoutError(message, details);
    throw new BackendError(message, details);
  };
}

/** The default runner, for one agent per process. */
export const run: Runner = createRunner(new Children());
