import { describe, expect, it } from 'vitest';
import { GIB, UUID_PATTERN, UUID_RE, isObject } from './util.js';

describe('shared helpers', () => {
  it('isObject takes a map, not null nor an array', () => {
    expect([{}, { a: 1 }].map(isObject)).toEqual([true, true]);
    expect([null, [], 'x', 1, undefined].map(isObject)).toEqual([false, false, false, false, false]);
  });

  it('UUID_RE takes a whole UUID in any case; UUID_PATTERN finds one inside a name', () => {
    expect(UUID_RE.test('0f8fad5b-d9cb-469f-a165-70867728950e')).toBe(true);
    expect(UUID_RE.test('0F8FAD5B-D9CB-469F-A165-70867728950E')).toBe(true);
    expect(UUID_RE.test('volume-0f8fad5b-d9cb-469f-a165-70867728950e')).toBe(false);
    expect(new RegExp(`^volume-(${UUID_PATTERN})$`).exec('volume-0f8fad5b-d9cb-469f-a165-70867728950e')?.[1]).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
  });

  it('GIB is 2^30 bytes', () => {
    expect(GIB).toBe(1073741824);
  });
});
