import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { BackendError, TimeoutError, messageOf } from '@kindling/protocol';
import { requestCost } from '../../cost.js';
import { reaperMark } from '../../exec/reaper.js';
import type { RunOptions, RunResult, Runner } from '../../exec/run.js';
import { log } from '../../log.js';
import { ensureOwnFile } from '../../own-file.js';
import { currentRequest } from '../../request-context.js';

/**
 * The command profile the shell runs under (lvmdbusd's way): lvm2 takes a shell's report format and
 * command log from the config it starts with, never from a command's options, and the only config a
 * shell can be given is a profile in `<LVM_SYSTEM_DIR>/profile/`.
 */
export const SHELL_PROFILE = 'kindling-lvm-shell';
export const PROFILE_TEXT = [
  "# kindling-agent's long-lived lvm shell: each command's report and outcome as one JSON document.",
  'report { output_format = "json" compact_output = 1 }',
  'log { report_command_log = 1 command_log_selection = "all" }',
  '',
].join('\n');

/** The runner's default: a command that takes longer is killed (here, with its shell). */
const DEFAULT_TIMEOUT_MS = 120_000;
const STDERR_TAIL = 2000;
/** lvm2's ECMD_PROCESSED: the command did what it was asked. */
const PROCESSED = 1;

interface LogEntry {
  log_type?: string;
  log_context?: string;
  log_message?: string;
  log_ret_code?: string;
}
interface ShellDoc {
  report?: unknown[];
  log?: LogEntry[];
}
/** A command's document and the status entry that ends it. */
interface Answer {
  doc: ShellDoc;
  status: LogEntry;
}

/**
 * One shell line for `argv`, or null when lvm2's splitter cannot carry an argument unchanged (it
 * knows quotes but no escapes, and `#` starts a comment): such a command runs as its own process.
 */
export function shellLine(argv: readonly string[]): string | null {
  const words: string[] = [];
  for (const arg of argv) {
    if (arg === '' || /[\n\r\0]/.test(arg)) return null;
    if (/^[A-Za-z0-9_./:=,+@%-]+$/.test(arg)) words.push(arg);
    else if (!arg.includes("'")) words.push(`'${arg}'`);
    else if (!arg.includes('"')) words.push(`"${arg}"`);
    else return null;
  }
  return words.join(' ');
}

/** Cuts a stream of concatenated JSON documents into whole ones (brace depth, outside strings). */
export class DocSplitter {
  private buf = '';
  private pos = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  push(chunk: string): string[] {
    this.buf += chunk;
    const docs: string[] = [];
    for (; this.pos < this.buf.length; this.pos++) {
      const c = this.buf[this.pos];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === '{') this.depth++;
      else if (c === '}' && --this.depth === 0) {
        docs.push(this.buf.slice(0, this.pos + 1));
        this.buf = this.buf.slice(this.pos + 1);
        this.pos = -1;
      }
    }
    return docs;
  }
}

/** The shell's own entry that ends a command's document: what lvm2 returned for it. */
function statusOf(doc: ShellDoc): LogEntry | undefined {
  return doc.log?.findLast((e) => e.log_context === 'shell' && e.log_type === 'status');
}

/** What a run of `argv` would have printed, from its document: reports as `--reportformat json` prints them. */
function outcome(doc: ShellDoc, status: LogEntry): { ok: boolean; exitCode: number; result: { stdout: string; stderr: string } } {
  const entries = doc.log ?? [];
  const ret = Number(status.log_ret_code ?? Number.NaN);
  const messages = (types: string[]): string =>
    entries.filter((e) => types.includes(e.log_type ?? '')).map((e) => `  ${e.log_message ?? ''}\n`).join('');
  const stdout = doc.report ? JSON.stringify({ report: doc.report }) : messages(['print']);
  return { ok: ret === PROCESSED, exitCode: ret, result: { stdout, stderr: messages(['warn', 'error']) } };
}

/**
 * One long-lived `lvm` process (the lvm shell, as lvmdbusd keeps one) that runs this backend's lvm2
 * commands one at a time, sparing each the launch and start-up of a process of its own. Each
 * command's report and outcome come back as one JSON document on LVM_REPORT_FD. The same guarantees
 * as the runner's: argv only (quoted for lvm2's splitter, else run as a process), a command past its
 * timeout is killed with its shell, and the shell dies with the agent (it carries the reaper's mark,
 * exec/reaper.ts; lvm2 forks nothing for the commands sent here). A shell that died is started again at the
 * next command; one that cannot start here at all (no profile folder lvm2 reads) leaves every
 * command to `fallback`, said once in the log.
 */
export class LvmShell {
  private proc: ChildProcess | null = null;
  private splitter = new DocSplitter();
  private waiting: { resolve(answer: Answer): void; reject(err: Error): void } | null = null;
  private stderr = '';
  /** What lvm2 said on stderr as the shell started ("Activation disabled"): a process says it at every command. */
  private banner = '';
  private turn: Promise<unknown> = Promise.resolve();
  /** Set when the first shell could not start: lvm2 cannot keep one here. */
  private unusable = false;
  private started = false;
  private closed = false;

  constructor(
    private readonly env: Record<string, string>,
    private readonly fallback: Runner,
  ) {}

  /** The running shell's pid (tests end it to see it come back). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  readonly run: Runner = (argv, options = {}) => {
    const line = shellLine(argv);
    if (line === null || this.unusable || this.closed || options.onStdoutLine || options.onStderrLine || options.copy) return this.fallback(argv, options);
    const mine = this.turn.then(() => this.command(argv, line, options));
    this.turn = mine.catch(() => undefined);
    return mine;
  };

  /** Ends the shell once its command in flight is done (lvm2 exits at the end of its input); later commands run as processes. */
  close(): void {
    this.closed = true;
    this.proc?.stdin?.end();
  }

  private async command(argv: readonly string[], line: string, options: RunOptions): Promise<RunResult> {
    if (!this.proc) {
      try {
        await this.start();
      } catch (err) {
        // A shell that ran before and cannot start again now is tried again at the next command.
        if (!this.started) {
          this.unusable = true;
          log.warn({ err: messageOf(err) }, 'lvm shell unavailable: each lvm2 command runs as its own process');
        }
        return this.fallback(argv, options);
      }
    }
    const cost = requestCost();
    const began = performance.now();
    const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const answer = await this.exchange(line, timeout).catch((err: unknown) => {
      const message = `${argv[0]} ${err instanceof TimeoutError ? `timed out after ${timeout} ms` : `failed: ${messageOf(err)}`}`;
      const details = { command: [...argv], exitCode: null, stderrTail: this.stderr.slice(-STDERR_TAIL).trim() || messageOf(err) };
      log.warn({ ...requestFields(), ...details }, message);
      throw err instanceof TimeoutError ? new TimeoutError(message, details) : new BackendError(message, details);
    });
    if (cost) {
      cost.commands++;
      cost.add('command', began);
    }
    const { ok, exitCode, result } = outcome(answer.doc, answer.status);
    result.stderr = this.banner + this.stderr + result.stderr;
    if (ok) return result;
    const stderrTail = result.stderr.slice(-STDERR_TAIL).trim() || `exit ${exitCode}`;
    const message = `${argv[0]} failed (exit ${exitCode}): ${stderrTail.split('\n').at(-1)?.trim()}`;
    const details = { command: [...argv], exitCode, stderrTail };
    log[options.expected?.(result.stderr) ? 'debug' : 'warn']({ ...requestFields(), ...details }, message);
    throw new BackendError(message, details);
  }

  /** Starts the shell and waits for its first answer, so a shell that cannot run here is known at once. */
  private async start(): Promise<void> {
    await ensureOwnFile(join(this.env.LVM_SYSTEM_DIR ?? '/etc/lvm', 'profile', `${SHELL_PROFILE}.profile`), PROFILE_TEXT, 0o644);
    const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...this.env, LVM_COMMAND_PROFILE: SHELL_PROFILE, LVM_REPORT_FD: '3' };
    // The reaper's mark, as every command carries: the shell dies with the agent however it dies.
    const proc = spawn('lvm', [], {
      env: { ...env, ...reaperMark(env) },
      stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
      // Its own process group: a timeout kills it whole; a Ctrl-C on the agent's terminal is the agent's.
      detached: true,
    });
    this.proc = proc;
    this.splitter = new DocSplitter();
    const report = proc.stdio[3] as Readable;
    report.setEncoding('utf8');
    report.on('data', (chunk: string) => {
      // A shell already given up (killed at a timeout) answers no later command.
      if (this.proc !== proc) return;
      for (const text of this.splitter.push(chunk)) this.answer(text);
    });
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-STDERR_TAIL)));
    proc.stdin?.on('error', () => undefined);
    proc.on('error', (err) => this.ended(proc, err.message));
    proc.on('exit', (code, signal) => this.ended(proc, `the lvm shell exited (${signal ?? `exit ${code}`})`));
    await this.exchange('version', DEFAULT_TIMEOUT_MS);
    this.banner = this.stderr;
    this.started = true;
  }

  /**
   * A document ends the command in flight only with the shell's status entry. A process lvm2 forked
   * from the shell (a poller a merge's activation starts) still holds LVM_REPORT_FD and may print on
   * it; taking its document for the command's would fail a command that succeeded.
   */
  private answer(text: string): void {
    let doc: ShellDoc;
    try {
      doc = JSON.parse(text) as ShellDoc;
    } catch (err) {
      this.settle((w) => w.reject(new Error(`the lvm shell printed a document that is not JSON: ${messageOf(err)}`)));
      return;
    }
    const status = statusOf(doc);
    if (status) this.settle((w) => w.resolve({ doc, status }));
    else log.warn({ document: text.slice(0, STDERR_TAIL) }, 'the lvm shell printed a document that ends no command: ignored');
  }

  private exchange(line: string, timeoutMs: number): Promise<Answer> {
    const proc = this.proc;
    if (!proc?.stdin) return Promise.reject(new Error('the lvm shell is not running'));
    this.stderr = '';
    this.hold(proc, true);
    return new Promise<Answer>((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => this.kill(proc, new TimeoutError(`timed out after ${timeoutMs} ms`)), timeoutMs) : null;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        this.hold(proc, false);
      };
      this.waiting = {
        resolve: (answer) => (done(), resolve(answer)),
        reject: (err) => (done(), reject(err)),
      };
      proc.stdin?.write(`${line}\n`);
    });
  }

  private settle(fn: (w: NonNullable<LvmShell['waiting']>) => void): void {
    const waiting = this.waiting;
    this.waiting = null;
    if (waiting) fn(waiting);
  }

  /** Kills the shell's group; the next command starts a new shell without waiting for this one's exit. */
  private kill(proc: ChildProcess, why: Error): void {
    if (this.proc === proc) this.proc = null;
    this.settle((w) => w.reject(why));
    try {
      if (proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // ESRCH: already gone.
    }
  }

  /** A shell that ended fails the command it was running (which may or may not have been done); the next one starts a new shell. */
  private ended(proc: ChildProcess, why: string): void {
    if (this.proc !== proc) return;
    this.proc = null;
    this.settle((w) => w.reject(new Error(why)));
  }

  /** An idle shell keeps no agent (or test, or script) from exiting; a command in flight does. */
  private hold(proc: ChildProcess, busy: boolean): void {
    for (const s of [proc, proc.stdin, proc.stderr, proc.stdio[3]] as ({ ref?(): void; unref?(): void } | null)[]) {
      if (busy) s?.ref?.();
      else s?.unref?.();
    }
  }
}

function requestFields(): { requestId?: string; op?: string } {
  const request = currentRequest();
  return request ? { requestId: request.requestId, op: request.op } : {};
}
