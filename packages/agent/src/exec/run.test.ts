import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, TimeoutError } from '@kindling/protocol';
import { run } from './run.js';

let dir: string;
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

  it('runs every command with a parent-death signal, so it dies with the agent', async () => {
    // prctl(PR_GET_PDEATHSIG) as the command sees it: 9 is SIGKILL.
    const probe = 'import ctypes; s = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(s)); print(s.value)';
    expect((await run(['python3', '-c', probe])).stdout.trim()).toBe('9');
  });

  it('runs every command in its own process group, out of reach of a Ctrl-C meant for the agent', async () => {
    const stat = (await run(['cat', '/proc/self/stat'])).stdout;
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(state).toBe('R');
    expect(pgrp).toBe(stat.split(' ')[0]);
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
    const pid = (await readFile(pidFile, 'utf8')).trim();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
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
