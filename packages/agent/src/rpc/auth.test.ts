import { describe, expect, it } from 'vitest';
import { bearerMatches, bearerToken, roleOf } from './auth.js';

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

describe('roles', () => {
  it('grants admin for the token, read for a read token, nothing otherwise', () => {
    const credentials = { token: 'a'.repeat(32), readTokens: ['r'.repeat(32)] };
    expect(roleOf(`Bearer ${'a'.repeat(32)}`, credentials)).toBe('admin');
    expect(roleOf(`Bearer ${'r'.repeat(32)}`, credentials)).toBe('read');
    expect(roleOf('Bearer nope', credentials)).toBeNull();
    expect(roleOf(undefined, credentials)).toBeNull();
  });
});
