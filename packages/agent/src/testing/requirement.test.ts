import { afterEach, describe, expect, it, vi } from 'vitest';
import { ALLOW_SKIP_ENV, requires } from './requirement.js';

// Recording stand-ins for vitest's describe/it: what gets registered, and what running it does.
function recorder() {
  const registered: { name: string; body: () => unknown }[] = [];
  const register = (name: string, body: () => unknown) => registered.push({ name, body });
  return { registered, register };
}

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe('requires', () => {
  it('is the register itself when nothing is missing', () => {
    const { register } = recorder();
    const { register: skip } = recorder();
    expect(requires('the LVM tests', null, register, skip)).toBe(register);
  });

  it('registers a failing test naming what is missing, instead of skipping', () => {
    vi.stubEnv(ALLOW_SKIP_ENV, '');
    const { registered, register } = recorder();
    const skipped = recorder();
    requires('the LVM tests (a loop VG)', 'not running as root', register, skipped.register)('creates a volume', () => undefined);
    expect(skipped.registered).toEqual([]);
    expect(registered.map((r) => r.name)).toEqual(['creates a volume']);
    expect(() => registered[0]!.body()).toThrow(/the LVM tests \(a loop VG\) cannot run here: not running as root.*KINDLING_ALLOW_SKIP=1/);
  });

  it('skips, with a warning, only when KINDLING_ALLOW_SKIP=1', () => {
    vi.stubEnv(ALLOW_SKIP_ENV, '1');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const { register } = recorder();
    const skipped = recorder();
    expect(requires('the netns tests', 'ip netns add failed', register, skipped.register)).toBe(skipped.register);
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/SKIPPED the netns tests: ip netns add failed/));
  });
});
