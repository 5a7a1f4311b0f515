import { describe, expect, it } from 'vitest';
import { BackendError, TimeoutError } from '@kindling/protocol';
import { run } from './run.js';

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

  it('reports a failure with command line, exit code and stderr tail', async () => {
    const err = await run(['sh', '-c', 'echo boom >&2; exit 3']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).details).toMatchObject({
      command: ['sh', '-c', 'echo boom >&2; exit 3'],
      exitCode: 3,
      stderrTail: 'boom',
    });
    expect((err as BackendError).message).toContain('boom');
  });

  it('kills a command that outlives its timeout', async () => {
    const err = await run(['sleep', '5'], { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
  });

  it('reports a missing program as a backend error', async () => {
    await expect(run(['/nonexistent/tool'])).rejects.toBeInstanceOf(BackendError);
  });
});
