import { describe, expect, it } from 'vitest';
import { Drain } from './drain.js';

describe('Drain', () => {
  it('is idle at once with nothing in flight, and when the last operation settles', async () => {
    const drain = new Drain();
    await drain.idle(10);
    let finish!: () => void;
    const op = drain.track(new Promise<void>((r) => (finish = r)));
    let idle = false;
    const waiting = drain.idle(5000).then(() => (idle = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(idle).toBe(false);
    finish();
    await op;
    await waiting;
    expect(idle).toBe(true);
  });

  it('gives up waiting after the timeout', async () => {
    const drain = new Drain();
    void drain.track(new Promise(() => undefined));
    const started = Date.now();
    await drain.idle(50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });
});
