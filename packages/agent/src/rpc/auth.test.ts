import { describe, expect, it } from 'vitest';
import { bearerMatches, bearerToken } from './auth.js';

describe('bearer auth', () => {
  it('takes the scheme in any case and the token as sent', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken('BEARER   abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBe('');
    expect(bearerToken(undefined)).toBe('');
  });

  it('matches only the configured token', () => {
    const token = 'x'.repeat(32);
    expect(bearerMatches(`bearer ${token}`, token)).toBe(true);
    expect(bearerMatches(`Bearer ${token}y`, token)).toBe(false);
    expect(bearerMatches(undefined, token)).toBe(false);
  });
});
