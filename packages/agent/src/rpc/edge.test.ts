import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { hostAllowed, hostOf, originAllowed, type EdgePolicy } from './edge.js';

const policy: EdgePolicy = { allowedHosts: ['agent.example'], allowedOrigins: ['https://console.example'], listenHost: '127.0.0.1' };

describe('edge policy', () => {
  it('reads the host out of Host headers with ports and IPv6 brackets', () => {
    expect(hostOf('127.0.0.1:8600')).toBe('127.0.0.1');
    expect(hostOf('[::1]:8600')).toBe('::1');
    expect(hostOf('Agent.Example')).toBe('agent.example');
    expect(hostOf('::1')).toBe('::1');
  });

  it('answers loopback, IP literals, its own and configured names; refuses other names (DNS rebinding)', () => {
    for (const ok of ['127.0.0.1:8600', 'localhost:8600', '[::1]:1', '10.0.0.5:8600', 'agent.example:8600', hostname()]) {
      expect(hostAllowed(ok, policy), ok).toBe(true);
    }
    for (const bad of ['evil.example:8600', 'rebind.attacker.test', '', undefined]) expect(hostAllowed(bad, policy), String(bad)).toBe(false);
  });

  it('lets clients without an Origin in, and browsers only from allow-listed origins', () => {
    expect(originAllowed(undefined, policy)).toBe(true);
    expect(originAllowed('https://console.example', policy)).toBe(true);
    expect(originAllowed('https://evil.example', policy)).toBe(false);
    expect(originAllowed('null', policy)).toBe(false);
  });
});
