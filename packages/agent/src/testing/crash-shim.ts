import { constants } from 'node:fs';
import { access, appendFile, chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * Crash injection: a folder of shim executables put first on the agent's PATH (startAgentProcess's
 * `pathPrefix`). A shim passes its call through to the real command unless an armed rule matches it;
 * then it stalls at the rule's point, writes a marker the test waits on, and `exec`s `sleep`, so the
 * sleeping process is the very one the agent spawned (and keeps any parent-death signal it was given).
 * Rules live in a file in the shim folder: the agent runs commands with a clean environment.
 */

export interface StallRule {
  /** The command to shim, as the agent names it (`qemu-img`, `truncate`, `dd`, `lvcreate`, ...). */
  command: string;
  /** Words that must all be arguments of the call (`['convert']`, `['create', '-b']`); none: any call. */
  args?: string[];
  /** Stall on the n-th matching call, 1-based (default 1); the calls before and after pass through. */
  nth?: number;
  /**
   * `before`: the real command never runs. `after`: it ran to the end, but the agent never hears of it.
   * `hold`: the call waits before the real command until `resume()`, then runs it as if never held.
   */
  at: 'before' | 'after' | 'hold';
}

export interface Stall {
  /** The stalled process: the one the agent spawned, now a `sleep`. */
  pid: number;
  argv: string[];
  /** The real command's exit code (`after` only). */
  exitCode: number | null;
}

export interface ArmedStall {
  /** Resolves when a call stalls at this rule; rejects after `timeoutMs` (default 20 s). */
  reached(timeoutMs?: number): Promise<Stall>;
  /** A `hold` rule: lets the held call go on to the real command. */
  resume(): Promise<void>;
}

export interface CrashShim {
  /** The folder to put first on the agent's PATH. */
  dir: string;
  arm(rule: StallRule): Promise<ArmedStall>;
  /** True while the stalled process still runs (a child that outlived the agent). */
  alive(stall: Stall): Promise<boolean>;
  /** Ends every stalled process still running (by its pid), and forgets the rules. */
  release(): Promise<void>;
  dispose(): Promise<void>;
}

// One script for every command: it learns its name and folder from its own path, so nothing of the
// test (paths, argv) is ever interpolated into shell text. Rule lines: id, command, nth, point, words.
const SCRIPT = `#!/bin/bash
self=\${BASH_SOURCE[0]}
name=\${self##*/}
dir=\${self%/*}
real="$dir/real/$name"
fire=
if [[ -s "$dir/rules" ]]; then
  exec 9>>"$dir/lock"
  flock 9
  while IFS=$'\\t' read -r -a rule; do
    [[ \${rule[1]} == "$name" ]] || continue
    for word in "\${rule[@]:4}"; do
      found=
      for arg in "$@"; do [[ $arg == "$word" ]] && found=1 && break; done
      [[ -n $found ]] || continue 2
    done
    count=0
    [[ -f "$dir/count-\${rule[0]}" ]] && count=$(<"$dir/count-\${rule[0]}")
    count=$((count + 1))
    echo "$count" >"$dir/count-\${rule[0]}"
    if [[ $count == "\${rule[2]}" ]]; then fire=\${rule[0]}; at=\${rule[3]}; break; fi
  done <"$dir/rules"
  exec 9>&-
fi
[[ -n $fire ]] || exec -a "$name" "$real" "$@"
rc=none
if [[ $at == after ]]; then
  (exec -a "$name" "$real" "$@")
  rc=$?
fi
{ echo "$$"; echo "$rc"; printf '%s\\n' "$name" "$@"; } >"$dir/stalled-$fire.tmp"
mv "$dir/stalled-$fire.tmp" "$dir/stalled-$fire"
if [[ $at == hold ]]; then
  while [[ ! -e "$dir/resume-$fire" ]]; do sleep 0.05; done
  exec -a "$name" "$real" "$@"
fi
exec sleep 600
`;

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(() => true, () => false);
}

/** The command as PATH (without the shim folder) finds it. */
async function findReal(command: string, shimDir: string): Promise<string> {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    if (!folder || folder === shimDir) continue;
    const path = join(folder, command);
    if (await isExecutable(path)) return path;
  }
  throw new Error(`crash shim: ${command} is not on PATH`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Running and not a zombie: the process a stall named, checked by pid (a reaped pid reads as gone). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return false;
  // Field 3, after the parenthesised name, is the state.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return state !== 'Z' && cmdline.startsWith('sleep\0');
}

/** Shims for `commands`, each passing through to the real one until a rule is armed. */
export async function createCrashShim(commands: string[]): Promise<CrashShim> {
  const dir = await mkdtemp(join(tmpdir(), 'kindling-shim-'));
  await mkdir(join(dir, 'real'));
  for (const command of commands) {
    if (!/^[A-Za-z0-9._-]+$/.test(command)) throw new Error(`crash shim: not a command name: ${command}`);
    await symlink(await findReal(command, dir), join(dir, 'real', command));
    await writeFile(join(dir, command), SCRIPT);
    await chmod(join(dir, command), 0o755);
  }
  let nextId = 1;
  const stalled = new Set<number>();

  const readStall = async (marker: string): Promise<Stall | null> => {
    const text = await readFile(marker, 'utf8').catch(() => null);
    if (text === null) return null;
    const [pid, rc, ...argv] = text.trimEnd().split('\n');
    const stall = { pid: Number(pid), exitCode: rc === 'none' ? null : Number(rc), argv };
    stalled.add(stall.pid);
    return stall;
  };

  const release = async (): Promise<void> => {
    for (const pid of stalled) {
      if (await running(pid)) process.kill(pid, 'SIGKILL');
    }
    stalled.clear();
    await writeFile(join(dir, 'rules'), '');
  };

  return {
    dir,
    release,
    async arm(rule) {
      if (!commands.includes(rule.command)) throw new Error(`crash shim: no shim for ${rule.command}`);
      const words = rule.args ?? [];
      // Rule lines are tab-separated: an empty word or a tab or newline in one would shift the fields.
      if ([rule.command, ...words].some((w) => w === '' || /[\t\n]/.test(w))) throw new Error('crash shim: empty word, tab or newline in a rule');
      const id = nextId++;
      await appendFile(join(dir, 'rules'), [id, rule.command, rule.nth ?? 1, rule.at, ...words].join('\t') + '\n');
      const marker = join(dir, `stalled-${id}`);
      return {
        async resume() {
          if (rule.at !== 'hold') throw new Error('crash shim: only a hold rule resumes');
          await writeFile(join(dir, `resume-${id}`), '');
        },
        async reached(timeoutMs = 20_000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const stall = await readStall(marker);
            if (stall) return stall;
            if (Date.now() > deadline) {
              throw new Error(`crash shim: no call of ${rule.command} ${words.join(' ')} stalled (${rule.at}) within ${timeoutMs} ms`);
            }
            await sleep(20);
          }
        },
      };
    },
    async alive(stall) {
      // A parent-death signal lands at once, but the kernel may take a moment to reap.
      for (let i = 0; i < 25; i++) {
        if (!(await running(stall.pid))) return false;
        await sleep(20);
      }
      return true;
    },
    async dispose() {
      await release();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
