import { describe, expect, it } from 'vitest';
import { Drain } from './drain.js';

describe('Drain', () => {
  it('is idle at once with nothing in flight, and when the last operation settles', async () => {
    const drain = new Drain();
    expect(await drain.idle(10)).toBe(true);
    let finish!: () => void;
    const op = drain.track(new Promise<void>((r) => (finish = r)));
    let idle: boolean | undefined;
    const waiting = drain.idle(5000).then((v) => (idle = v));
    await new Promise((r) => setTimeout(r, 20));
    expect(idle).toBeUndefined();
    finish();
    await op;
    await waiting;
    expect(idle).toBe(true);
  });

  it('gives up waiting after the timeout and says an operation is still in flight', async () => {
    const drain = new Drain();
    void drain.track(new Promise(() => undefined));
    expect(await drain.idle(50)).toBe(false);
  });
});
