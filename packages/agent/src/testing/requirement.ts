/** Set to 1 on a developer's machine to skip suites whose host requirement is missing, instead of failing them. */
export const ALLOW_SKIP_ENV = 'KINDLING_ALLOW_SKIP';

/** How a test file registers a suite or a test: vitest's `describe` or `it` (taken, not imported: no vitest here). */
type Register = (name: string, body: () => void | Promise<void>) => unknown;

/**
 * `register` (vitest's describe or it) for tests that need something of the host (root, loop devices,
 * `chattr`, network namespaces). When `missing` (why it is unavailable) is null, `register` itself.
 * Else each test registered through it fails with a message naming what is missing, so a host without
 * it cannot turn CI green by skipping; with KINDLING_ALLOW_SKIP=1, `skip` instead, with a warning.
 */
export function requires<R extends Register>(what: string, missing: string | null, register: R, skip: R): R {
  if (missing === null) return register;
  const message = `${what} cannot run here: ${missing}. Run as root on a host that has it, or set ${ALLOW_SKIP_ENV}=1 to skip.`;
  if (process.env[ALLOW_SKIP_ENV] === '1') {
    console.warn(`SKIPPED ${what}: ${missing} (${ALLOW_SKIP_ENV}=1)`);
    return skip;
  }
  const failing = (name: string): unknown =>
    register(name, () => {
      throw new Error(message);
    });
  // Called as the caller calls `register` (name first); its other arguments are of no use here.
  return failing as unknown as R;
}
