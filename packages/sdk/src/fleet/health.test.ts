import { describe, expect, it } from 'vitest';
import { readyzUrl } from './health.js';

describe('readyzUrl', () => {
  it('is the HTTP twin of the RPC endpoint, on the same port', () => {
    expect(readyzUrl('ws://10.0.0.2:8600')).toBe('http://10.0.0.2:8600/readyz');
    expect(readyzUrl('ws://127.0.0.1:8600/rpc')).toBe('http://127.0.0.1:8600/readyz');
    expect(readyzUrl('wss://[::1]:9000/kindling/rpc')).toBe('https://[::1]:9000/kindling/readyz');
  });
});
