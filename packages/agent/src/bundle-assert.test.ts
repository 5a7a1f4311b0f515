import { AssertionError } from 'node:assert';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// What the bundled agent's dependencies get for `require('assert')` (scripts/bundle-agent.mjs).
const assert = createRequire(import.meta.url)(resolve(import.meta.dirname, '../../../scripts/bundle-assert.cjs')) as (value: unknown, message?: string) => void;

describe("the bundle's stand-in for node:assert", () => {
  it('passes a true value and throws an AssertionError with the message for a false one', () => {
    expect(() => assert(1 === 1, 'never seen')).not.toThrow();
    expect(() => assert(typeof 'x' === 'number', 'sonic.fd must be a number')).toThrow(AssertionError);
    expect(() => assert(0, 'sonic.fd must be a number')).toThrow(/^sonic.fd must be a number$/);
  });
});
