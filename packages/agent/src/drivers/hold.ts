import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { BackendError } from '@kindling/protocol';
import type { WriteHold } from './driver.js';

/**
 * The holder: holds each target's writes (`device-mapper`: suspends the device, which queues its I/O
 * and freezes a filesystem mounted on it; `filesystem`: freezes the filesystem mounted there, which
 * flushes it first), says `held`, then lets them all go when its input ends (the agent released the
 * hold, or died however it died: the kernel closes the pipe) or when the time limit passes, whichever
 * comes first. A hold that fails lets go of the ones done. A program of its own, not the agent's: the
 * hold must end even when the agent cannot end it. Its arguments come as argv, never spliced into the text.
 */
const HOLDER = `
kind=$1; limit=$2; shift 2
hold() { if [ "$kind" = filesystem ]; then fsfreeze --freeze "$1"; else dmsetup suspend "$1"; fi; }
free() { if [ "$kind" = filesystem ]; then fsfreeze --unfreeze "$1"; else dmsetup resume "$1"; fi; }
release() { for d in "$@"; do free "$d" >/dev/null || echo "resume-failed $d"; done; }
# An agent gone (its pipes broken) or signalled must not stop the release.
trap '' INT HUP TERM PIPE
done=()
for d in "$@"; do
  if ! hold "$d" >/dev/null; then release "\${done[@]}"; echo failed; exit 1; fi
  done+=("$d")
done
echo held
read -r -t "$limit" _
[ $? -gt 128 ] && echo expired
release "$@"
`;

export type HoldKind = 'device-mapper' | 'filesystem';

/**
 * Holds writes to `targets` (device-mapper device names, or the mount points of filesystems) until
 * `release()`, for at most `limitMs`. lvm2's own snapshot steps suspend an origin that is already
 * suspended by counting it, then resume it: a member is live again from its own snapshot on, while
 * the members not yet cut stay held, so every cut shows the devices as they were when the hold began.
 */
export async function holdWritesOf(kind: HoldKind, targets: string[], limitMs: number): Promise<WriteHold> {
  const seconds = Math.max(1, Math.ceil(limitMs / 1000));
  // --norc: bash reads ~/.bashrc when its input is a socket (as node's pipes are), taking it for sshd's.
  const child = spawn('bash', ['--norc', '--noprofile', '-c', HOLDER, 'kindling-hold', kind, String(seconds), ...targets], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    // Its own process group: a Ctrl-C or a group kill aimed at the agent leaves the hold to end itself.
    detached: true,
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
  const said: string[] = [];
  const lines = createInterface({ input: child.stdout });
  // Ended: exited (with a code or by a signal), or never started (no 'exit' follows a failed spawn).
  let ended = false;
  const exited = new Promise<void>((resolve) => {
    const end = (): void => {
      ended = true;
      resolve();
    };
    child.once('exit', end);
    child.once('error', end);
  });
  const held = new Promise<boolean>((resolve) => {
    lines.on('line', (line) => {
      said.push(line);
      if (line === 'held') resolve(true);
      if (line === 'failed') resolve(false);
    });
    void exited.then(() => resolve(false));
  });
  // A holder that already ended (its limit passed) has closed its input: ending it then is no error.
  child.stdin.on('error', () => undefined);
  if (!(await held)) {
    await exited;
    throw new BackendError(`could not hold writes to ${targets.join(', ')}: ${stderr.trim() || said.join('; ') || 'the holder did not start'}`);
  }
  let released = false;
  return {
    get expired() {
      return said.includes('expired') || (ended && !released);
    },
    async release() {
      released = true;
      child.stdin.end();
      await exited;
      const failed = said.filter((l) => l.startsWith('resume-failed '));
      if (failed.length > 0) throw new BackendError(`could not resume ${failed.map((l) => l.slice(14)).join(', ')}: ${stderr.trim()}`);
    },
  };
}
