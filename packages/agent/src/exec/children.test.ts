import { describe, expect, it } from 'vitest';
import { BackendError } from '@kindling/protocol';
import { Children } from './children.js';
import { createRunner } from './run.js';

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
};

describe('Children', () => {
  it('counts the commands running and forgets them when they exit', async () => {
    const children = new Children();
    const run = createRunner(children);
    const both = Promise.all([run(['sleep', '0.2']), run(['sleep', '0.2'])]);
    expect(children.count).toBe(2);
    await both;
    expect(children.count).toBe(0);
  });

  it('ends every running command, whose caller sees a failure, and refuses new ones', async () => {
    const children = new Children();
    const run = createRunner(children);
    let copying = false;
    const copy = run(['sh', '-c', 'echo copying >&2; exec sleep 60'], { onStderrLine: () => (copying = true) }).catch((e: unknown) => e);
    await until(() => copying);
    expect(children.count).toBe(1);
    children.endAll();
    const err = await copy;
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).message).toMatch(/ended: the agent is stopping/);
    expect((err as BackendError).details).toEqual({ command: ['sh', '-c', 'echo copying >&2; exec sleep 60'], exitCode: null, stderrTail: 'copying' });
    expect(children.count).toBe(0);

    const late = await run(['true']).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(BackendError);
    expect((late as BackendError).message).toMatch(/not started: the agent is stopping/);
  });

  it('leaves the commands of another registry alone', async () => {
    const ended = new Children();
    const other = new Children();
    ended.endAll();
    await expect(createRunner(other)(['true'])).resolves.toEqual({ stdout: '', stderr: '' });
  });
});
