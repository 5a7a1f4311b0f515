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
    await until(() => children.count === 2);
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

  it('runs at most the configured commands at once, and fewer copies; the others wait their turn', async () => {
    const children = new Children({ commands: 3, copies: 1 });
    const run = createRunner(children);
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, children.count)), 2);
    const commands = Array.from({ length: 8 }, () => run(['sleep', '0.05']));
    const copies = Array.from({ length: 3 }, () => run(['sleep', '0.05'], { copy: true }));
    expect(children.waiting).toBeGreaterThan(0);
    await Promise.all([...commands, ...copies]);
    clearInterval(watch);
    expect(peak).toBe(3);
    expect(children.count).toBe(0);
    expect(children.waiting).toBe(0);
  });

  it('a command waiting for a slot when the agent stops is refused, not started', async () => {
    const children = new Children({ commands: 1, copies: 1 });
    const run = createRunner(children);
    const first = run(['sleep', '5']).catch((e: unknown) => e);
    const queued = run(['true']).catch((e: unknown) => e);
    await until(() => children.count === 1);
    children.endAll();
    expect(((await queued) as BackendError).message).toMatch(/not started: the agent is stopping/);
    await first;
  });
});
