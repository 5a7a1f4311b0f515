import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, TimeoutError } from '@kindling/protocol';
import { run } from './run.js';

let dir: string;

/** Whether the process has exited (a zombie waiting for its reaper counts), polled for a generous while. */
async function gone(pid: string): Promise<boolean> {
  const state = async () => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    return stat === null ? 'X' : stat.slice(stat.lastIndexOf(')') + 2)[0];
  };
  for (let i = 0; i < 500; i++) {
    if (['Z', 'X'].includes((await state())!)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-run-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('run', () => {
  it('passes arguments verbatim, with no shell to interpret them', async () => {
    const { stdout } = await run(['printf', '%s|', 'a b', '$(id)', ';rm -rf /']);
    expect(stdout).toBe('a b|$(id)|;rm -rf /|');
  });

  it('runs with LC_ALL=C and only the env it is given', async () => {
    const { stdout } = await run(['env'], { env: { LVM_SYSTEM_DIR: '/x' } });
    expect(stdout).toContain('LC_ALL=C');
    expect(stdout).toContain('LVM_SYSTEM_DIR=/x');
    expect(stdout).not.toContain('HOME=');
  });

  it('keeps output as the command wrote it, final newline included', async () => {
    expect(await run(['sh', '-c', 'printf "out\\n"; printf "err\\n" >&2'])).toEqual({ stdout: 'out\n', stderr: 'err\n' });
  });

  it('runs every command in a process group of its own, out of reach of a Ctrl-C meant for the agent', async () => {
    const group = (stat: string) => stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2];
    const command = (await run(['cat', '/proc/self/stat'])).stdout;
    expect(group(command)).not.toBe(group(await readFile('/proc/self/stat', 'utf8')));
  });

  it('reports a failure with the command line as given, exit code and stderr tail', async () => {
    const err = await run(['sh', '-c', 'echo boom >&2; exit 3']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).details).toEqual({
      command: ['sh', '-c', 'echo boom >&2; exit 3'],
      exitCode: 3,
      stderrTail: 'boom',
    });
    expect((err as BackendError).message).toContain('boom');
  });

  it('kills a command that outlives its timeout', async () => {
    const err = await run(['sleep', '5'], { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).details).toMatchObject({ command: ['sleep', '5'] });
  });

  it('forces the kill of a timed-out command that ignores SIGTERM', async () => {
    const pidFile = join(dir, 'stubborn.pid');
    // `exec` keeps the pid; an ignored SIGTERM stays ignored across it.
    const script = `echo $$ > ${pidFile}; trap '' TERM; exec sleep 60`;
    const err = await run(['sh', '-c', script], { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(await gone((await readFile(pidFile, 'utf8')).trim())).toBe(true);
  });

  it('kills the whole process group of a timed-out command, the processes it forked too', async () => {
    const pidFile = join(dir, 'forked.pid');
    // The shell dies of the timeout's SIGTERM; the sleep it forked is what must not survive it.
    const err = await run(['sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`], { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    const pid = (await readFile(pidFile, 'utf8')).trim();
    expect(await gone(pid)).toBe(true);
  });

  it('kills a forked process that ignores SIGTERM along with its timed-out parent', async () => {
    const pidFile = join(dir, 'stubborn-child.pid');
    const script = `(trap '' TERM; exec sleep 60) & echo $! > ${pidFile}; trap '' TERM; wait`;
    const err = await run(['sh', '-c', script], { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(await gone((await readFile(pidFile, 'utf8')).trim())).toBe(true);
  });

  it('reports a missing program as a backend error naming it', async () => {
    const err = await run(['/nonexistent/tool']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).details).toMatchObject({ command: ['/nonexistent/tool'], exitCode: 127 });
    expect((err as BackendError).message).toContain('/nonexistent/tool');
  });

  it('hands over output line by line as it arrives, a carriage return ending a line too', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const script = 'printf " (10.00/100%%)\\r (50.00/100%%)\\r"; printf "1024 bytes copied\\rdone\\n" >&2; printf last';
    const result = await run(['sh', '-c', script], { onStdoutLine: (l) => out.push(l), onStderrLine: (l) => err.push(l) });
    expect(out).toEqual([' (10.00/100%)', ' (50.00/100%)', 'last']);
    expect(err).toEqual(['1024 bytes copied', 'done']);
    expect(result.stdout).toBe(' (10.00/100%)\r (50.00/100%)\rlast');
  });
});
