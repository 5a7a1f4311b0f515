import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { GIB } from '@kindling/sdk';
import { fitsRange, sizeInGiB, unsupportedCapability } from './capabilities.js';
import type { AccessModeName } from './types.js';

describe('sizes', () => {
  it('round up to whole GiB and respect the limit', () => {
    expect(sizeInGiB(null)).toBe(1);
    expect(sizeInGiB({ requiredBytes: GIB + 1, limitBytes: 0 })).toBe(2);
    expect(sizeInGiB({ requiredBytes: 0, limitBytes: 0 }, 5)).toBe(5);
    expect(() => sizeInGiB({ requiredBytes: GIB + 1, limitBytes: GIB + 2 })).toThrow(expect.objectContaining({ code: status.OUT_OF_RANGE }) as Error);
    expect(() => sizeInGiB({ requiredBytes: 3, limitBytes: 2 })).toThrow(expect.objectContaining({ code: status.OUT_OF_RANGE }) as Error);
    expect(fitsRange(2, { requiredBytes: GIB, limitBytes: 0 })).toBe(true);
    expect(fitsRange(2, { requiredBytes: GIB, limitBytes: GIB })).toBe(false);
  });
});

describe('capabilities', () => {
  it('take single-node modes with ext4, xfs or block, nothing else', () => {
    const mode = (m: string) => ({ accessMode: { mode: m as AccessModeName } });
    expect(unsupportedCapability({ mount: { fsType: 'xfs', mountFlags: [] }, ...mode('SINGLE_NODE_READER_ONLY') })).toBeNull();
    expect(unsupportedCapability({ block: {}, ...mode('SINGLE_NODE_SINGLE_WRITER') })).toBeNull();
    expect(unsupportedCapability({ block: {}, ...mode('MULTI_NODE_READER_ONLY') })).toMatch(/MULTI_NODE_READER_ONLY/);
    expect(unsupportedCapability({ mount: { fsType: 'btrfs', mountFlags: [] }, ...mode('SINGLE_NODE_WRITER') })).toMatch(/btrfs/);
  });
});
