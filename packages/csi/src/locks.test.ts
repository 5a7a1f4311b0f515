import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { InFlight } from './locks.js';

describe('InFlight', () => {
  it('refuses a second call on a key while the first runs, with ABORTED, and frees the key after', async () => {
    const inFlight = new InFlight();
    let finish!: () => void;
    const first = inFlight.run(['name:a', 'volume:v'], () => new Promise<string>((res) => (finish = () => res('first'))));
    await expect(inFlight.run(['volume:v'], async () => 'second')).rejects.toMatchObject({ code: status.ABORTED });
    expect(await inFlight.run(['name:b'], async () => 'other key')).toBe('other key');
    finish();
    expect(await first).toBe('first');
    expect(await inFlight.run(['volume:v'], async () => 'after')).toBe('after');
  });

  it('frees the key when the work fails', async () => {
    const inFlight = new InFlight();
    await expect(inFlight.run(['k'], async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await inFlight.run(['k'], async () => 'again')).toBe('again');
  });
});
