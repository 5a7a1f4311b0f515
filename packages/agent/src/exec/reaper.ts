import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * No process a command starts outlives the agent, however the agent dies (a SIGKILL cannot be caught
 * to clean up), forked ones included (`mount` forks `mount.nfs`). Each command carries `KINDLING_RUN=<mark>`,
 * a value unique to this agent process, in its environment from its first instruction; a forked child
 * inherits it. One reaper per agent process (a POSIX `sh`, ~1 MB, started with the first command) holds
 * the read end of a pipe whose write end only the agent has: its end of file means the agent is gone,
 * and the reaper then kills every process carrying the mark, with its process group (a grandchild that
 * cleared its environment but stayed in the command's group goes too), until none is left.
 * There is no register-after-spawn step, so no window where a command runs unknown to the reaper: the
 * mark is there at exec, and the reaper exists before the first command does. The reaper is in a
 * session of its own: a Ctrl-C or a kill of the agent's process group leaves it to do its work.
 * It is `sh` rather than a Node script: ~1 ms and ~1 MB to start against ~50 ms and ~40 MB, per agent.
 * The script is fixed text; the mark reaches it as an argument, never spliced into it.
 */
const REAPER_SCRIPT = [
  'read -r _', // blocks until the agent's end of the pipe closes: the agent never writes
  'mark=$1',
  'for round in 1 2 3 4 5 6 7 8 9 10; do',
  '  found=',
  // One grep for all of /proc: a NUL-separated environment entry equal to the mark, files listed.
  '  for file in $(grep -lzxF -e "$mark" /proc/[0-9]*/environ 2>/dev/null); do',
  '    pid=${file#/proc/}; pid=${pid%/environ}',
  '    read -r stat < "/proc/$pid/stat" 2>/dev/null || continue',
  // Fields after the command name: state, parent, process group.
  '    set -- ${stat##*) }',
  '    [ "$3" -gt 1 ] && kill -s KILL -- "-$3" 2>/dev/null',
  '    kill -s KILL "$pid" 2>/dev/null',
  '    found=1',
  '  done',
  '  [ -z "$found" ] && exit 0',
  'done',
].join('\n');

/** The programs the reaper runs, which `check-config` looks for. */
export const REAPER_TOOLS = ['sh', 'grep'] as const;

/** The environment variable every command of this agent process carries. */
export const RUN_MARK_VARIABLE = 'KINDLING_RUN';
let mark: string | undefined;
let reaper: ChildProcess | undefined;

/**
 * Starts this process's reaper if none runs (the first command, or a reaper that was killed: the
 * commands in flight carry the same mark, so a new one covers them too), and returns the environment
 * entry a command must carry.
 */
export function reaperMark(env: Record<string, string>): Record<string, string> {
  // Made with the first command, not at import: --version and --help pay for no random source.
  mark ??= randomBytes(16).toString('hex');
  if (!reaper) {
    const child = spawn('sh', ['-c', REAPER_SCRIPT, 'kindling-reaper', `${RUN_MARK_VARIABLE}=${mark}`], {
      stdio: ['pipe', 'ignore', 'ignore'],
      env,
      detached: true,
    });
    const gone = () => {
      if (reaper === child) reaper = undefined;
    };
    child.once('exit', gone);
    child.once('error', gone);
    child.stdin?.once('error', gone);
    // Neither the reaper nor its pipe keeps the agent's event loop alive.
    child.unref();
    (child.stdin as { unref?: () => void } | null)?.unref?.();
    reaper = child;
  }
  return { [RUN_MARK_VARIABLE]: mark };
}
