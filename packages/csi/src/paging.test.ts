import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { CsiError } from './errors.js';
import { page } from './paging.js';

const isKey = (t: string) => /^k\d$/.test(t);
const list = (entries: string[], maxEntries: number, startingToken = '') => page(entries, (e) => e, { maxEntries, startingToken }, isKey);

describe('paging', () => {
  it('hands out every entry once, sorted, with the last key as token', () => {
    expect(list(['k3', 'k1', 'k2'], 2)).toEqual({ entries: ['k1', 'k2'], nextToken: 'k2' });
    expect(list(['k3', 'k1', 'k2'], 2, 'k2')).toEqual({ entries: ['k3'], nextToken: '' });
    expect(list(['k3', 'k1', 'k2'], 0)).toEqual({ entries: ['k1', 'k2', 'k3'], nextToken: '' });
  });

  it('stays right when the entry a token names is gone', () => {
    expect(list(['k1', 'k3'], 5, 'k2')).toEqual({ entries: ['k3'], nextToken: '' });
  });

  it('refuses a token it never gave with ABORTED and a negative size with INVALID_ARGUMENT', () => {
    expect(() => list(['k1'], 1, 'nope')).toThrow(expect.objectContaining({ code: status.ABORTED }) as CsiError);
    expect(() => list(['k1'], -1)).toThrow(expect.objectContaining({ code: status.INVALID_ARGUMENT }) as CsiError);
  });
});
