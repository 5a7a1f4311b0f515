import { describe, expect, it } from 'vitest';
import { ConflictError } from '@kindling/protocol';
import { KeyedLocks } from './locks.js';
import { inRequest } from './request-context.js';

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
};

describe('KeyedLocks', () => {
  it('runs work on one key in arrival order, a failure not failing the next', async () => {
    const locks = new KeyedLocks();
    const order: string[] = [];
    const first = gate();
    const a = locks.with(['k'], async () => {
      await first.opened;
      order.push('a');
      throw new Error('a failed');
    });
    const b = locks.with(['k'], async () => order.push('b'));
    first.open();
    await expect(a).rejects.toThrow('a failed');
    await b;
    expect(order).toEqual(['a', 'b']);
  });

  it('refuses at once a cancellable request cancelled while it waits, and never runs its work', async () => {
    const locks = new KeyedLocks(true);
    const holder = gate();
    const held = locks.with(['k'], () => holder.opened);
    const cancel = new AbortController();
    let ran = false;
    const context = { op: 'volume.extend' as const, requestId: 'r', signal: cancel.signal, queued: false };
    const waiting = inRequest(context, () =>
      locks.with(['k', 'j'], async () => {
        ran = true;
      }),
    );
    expect(context.queued).toBe(true);
    cancel.abort();
    await expect(waiting).rejects.toBeInstanceOf(ConflictError);
    holder.open();
    await held;
    await locks.with(['k'], async () => undefined);
    expect(ran).toBe(false);
  });

  it('does not cancel work that has started, nor waits on locks that are not cancellable', async () => {
    const cancel = new AbortController();
    const context = { op: 'volume.extend' as const, signal: cancel.signal, queued: false };
    const started = gate();
    const running = inRequest(context, () =>
      new KeyedLocks(true).with(['k'], async () => {
        started.open();
        await new Promise((r) => setTimeout(r, 20));
        return 'done';
      }),
    );
    await started.opened;
    expect(context.queued).toBe(false);
    cancel.abort();
    expect(await running).toBe('done');

    const queue = new KeyedLocks();
    const holder = gate();
    const held = queue.with(['vg'], () => holder.opened);
    const other = new AbortController();
    const waiting = inRequest({ op: 'volume.create', signal: other.signal, queued: false }, () => queue.with(['vg'], async () => 'ran'));
    other.abort();
    holder.open();
    await held;
    expect(await waiting).toBe('ran');
  });
});
