import { accessSync, constants, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { ensureOwnFile, readOwnFile } from '../own-file.js';
import { commandPath, type Runner } from './run.js';

/**
 * The program exec would run for `name` (the first executable regular file of that name on the
 * commands' PATH) and what identifies this build of it: its place, inode, size and times. Undefined
 * when there is none, or when PATH holds a relative folder (resolved against whatever the current
 * folder is then). Synchronous: a handful of stat calls on local folders take microseconds, where
 * each trip through the thread pool took milliseconds at start.
 */
function identity(name: string): string | undefined {
  for (const dir of commandPath().split(':')) {
    if (!isAbsolute(dir)) return undefined;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      const s = statSync(file);
      if (s.isFile()) return `${file} ${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}\n`;
    } catch {
      // Not in this folder: exec would look in the next one too.
    }
  }
  return undefined;
}

/**
 * Runs `command` (a check that a tool starts, `qemu-img --version`) unless it already succeeded with
 * the very same program: `memo` (a file in the agent's data folder) keeps the identity of the one
 * that did. A start then costs no process (two forks, the tool's and the reaper's, ~15-30 ms before
 * ready), while a tool removed, replaced or upgraded is run again, and so still refuses the backend
 * if it no longer starts.
 */
export async function checkToolOnce(run: Runner, command: readonly [string, ...string[]], memo: string): Promise<void> {
  const program = identity(command[0]);
  const before = program && `${command.join(' ')}\n${program}`;
  if (before !== undefined && readOwnFile(memo) === before) return;
  await run(command);
  // Kept only if the program did not change while it ran: then it is the one that answered. A memo
  // that cannot be written costs the next start a run, nothing more.
  if (before !== undefined && identity(command[0]) === program) await ensureOwnFile(memo, before, 0o600).catch(() => undefined);
}
