import { describe, expect, it } from 'vitest';
import { decode, encode } from './codec.js';
import { BackendError, BusyError, ConflictError, ProtocolError, asKindlingError, errorFromInfo, toErrorInfo, ERROR_CODES } from './errors.js';
import { parseRequestFrame, requestIdOf } from './frames.js';
import { OP_NAMES, isOpName, validateArgs } from './ops.js';

describe('codec', () => {
  it('round-trips frames as plain msgpack maps', () => {
    const frame = { id: 7, op: 'volume.create', args: { backend: 'nfs', size: 1, metadata: { a: 'b' } } };
    expect(decode(encode(frame))).toEqual(frame);
  });
  it('turns undecodable bytes into a PROTOCOL error', () => {
    expect(() => decode(new Uint8Array([0x81]))).toThrow(ProtocolError);
  });
});

describe('errors', () => {
  it('rebuilds each code as its own class, with details', () => {
    for (const code of ERROR_CODES) {
      const err = errorFromInfo({ code, message: 'm', details: { x: 1 } });
      expect(err.code).toBe(code);
      expect(err.details).toEqual({ x: 1 });
    }
    expect(errorFromInfo({ code: 'CONFLICT', message: 'm' })).toBeInstanceOf(ConflictError);
    expect(errorFromInfo({ code: 'NOPE' as never, message: 'm' })).toBeInstanceOf(ProtocolError);
    expect(errorFromInfo({ code: 'toString' as never, message: 'm' })).toBeInstanceOf(ProtocolError);
    const busy = errorFromInfo({ code: 'BUSY', message: 'm', details: { retryAfterMs: 50 } });
    expect(busy).toBeInstanceOf(BusyError);
    expect(busy.name).toBe('BusyError');
  });
  it('reports a foreign error as INTERNAL with its cause kept, a Kindling one as itself', () => {
    const foreign = new TypeError('x');
    expect(toErrorInfo(foreign)).toEqual({ code: 'INTERNAL', message: 'x' });
    expect(asKindlingError(foreign).cause).toBe(foreign);
    expect(toErrorInfo(new BackendError('y', { exitCode: 3 }))).toEqual({ code: 'BACKEND_ERROR', message: 'y', details: { exitCode: 3 } });
  });
});

describe('op schemas', () => {
  it('has a schema for every op, named resource.verb', () => {
    for (const op of OP_NAMES) expect(op === 'hello' || /^[a-z]+\.[a-zA-Z]+$/.test(op)).toBe(true);
    expect(isOpName('volume.create')).toBe(true);
    expect(isOpName('toString')).toBe(false);
  });
  it('accepts a good create and rejects what API.md rules out', () => {
    expect(validateArgs('volume.create', { backend: 'nfs', size: 1, name: 'ok' }).ok).toBe(true);
    for (const bad of [
      { backend: 'nfs', size: 0 },
      { backend: 'nfs', size: 1.5 },
      { backend: 'nfs', size: 1, name: 'x'.repeat(256) },
      { backend: 'nfs', size: 1, name: 'tab\there' },
      { backend: 'nfs', size: 1, extra: true },
    ]) {
      expect(validateArgs('volume.create', bad).ok).toBe(false);
    }
  });
  it('says which field is wrong and why', () => {
    const result = validateArgs('volume.extend', { id: 'nope', size: -1 });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.issues.map((i) => i.path).sort()).toEqual(['id', 'size']);
      expect(result.message).toMatch(/^invalid arguments for volume\.extend: /);
    }
  });
});

describe('request frames', () => {
  it('carries an optional printable requestId', () => {
    expect(parseRequestFrame({ id: 1, op: 'volume.create', args: {}, requestId: 'r-1' }).requestId).toBe('r-1');
    expect(parseRequestFrame({ id: 1, op: 'volume.create', args: {} }).requestId).toBeUndefined();
    for (const bad of ['', 'a b', 'x'.repeat(129), 7]) {
      expect(() => parseRequestFrame({ id: 1, op: 'volume.create', args: {}, requestId: bad })).toThrow(/requestId/);
    }
  });

  it('keeps the id of a malformed frame so its error reply can be matched', () => {
    expect(requestIdOf({ id: 5, op: 1 })).toBe(5);
    expect(requestIdOf({ id: -1 })).toBeNull();
    expect(() => parseRequestFrame({ id: 5, op: 'x', args: {}, more: 1 })).toThrow(/unknown request frame fields/);
    expect(() => parseRequestFrame([1, 2])).toThrow(ProtocolError);
  });
});

describe('metadata keys', () => {
  it('refuses keys that would touch a prototype instead of dropping them', () => {
    for (const key of ['constructor', 'prototype', '__proto__']) {
      const frame = decode(encode({ metadata: Object.fromEntries([[key, 'x']]) })) as { metadata: unknown };
      const checked = validateArgs('volume.create', { backend: 'nfs', size: 1, metadata: frame.metadata });
      expect(checked.ok, key).toBe(false);
      if (!checked.ok) expect(checked.message).toMatch(/not allowed/);
    }
    expect(validateArgs('volume.create', { backend: 'nfs', size: 1, metadata: { a: 'b' } }).ok).toBe(true);
  });
});
