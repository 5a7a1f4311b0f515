import { describe, expect, it } from 'vitest';
import { UnauthorizedError } from '@kindling/protocol';
import { TRANSFER_TTL_MS, Tickets } from './tickets.js';

const source = { kind: 'volume', volumeId: '6f1d2a1e-8c1b-4c1e-9a51-3b0c3d6f9a10' } as const;

describe('transfer credentials', () => {
  it('open one read, once; a wrong credential does not use it up', () => {
    const tickets = new Tickets();
    const { id, credential } = tickets.mint(source);
    expect(credential).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(() => tickets.take(id, credential.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')))).toThrow(UnauthorizedError);
    expect(tickets.take(id, credential)).toEqual(source);
    expect(() => tickets.take(id, credential)).toThrow(UnauthorizedError);
  });

  it('are refused once expired', () => {
    let now = 1_000_000;
    const tickets = new Tickets(() => now);
    const { id, credential, expires } = tickets.mint(source);
    expect(expires).toBe(now + TRANSFER_TTL_MS);
    now = expires;
    expect(() => tickets.take(id, credential)).toThrow(/used, expired or was never issued/);
  });

  it('are each their own: one credential never opens another transfer', () => {
    const tickets = new Tickets();
    const first = tickets.mint(source);
    const second = tickets.mint(source);
    expect(first.credential).not.toBe(second.credential);
    expect(() => tickets.take(second.id, first.credential)).toThrow(UnauthorizedError);
    expect(tickets.take(second.id, second.credential)).toEqual(source);
  });
});
