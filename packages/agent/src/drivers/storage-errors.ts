import { BackendError, KindlingError } from '@kindling/protocol';
import type { Driver } from './driver.js';

interface ErrnoLike {
  message: string;
  syscall: string;
  code?: string;
  path?: string;
}

const isErrno = (err: unknown): err is ErrnoLike =>
  err instanceof Error && typeof (err as { syscall?: unknown }).syscall === 'string';

/**
 * An OS error from a file system or device call (EPERM on an immutable file, EIO from a share) is
 * storage failing: BACKEND_ERROR with the call named. Anything else passes as it is (a foreign error
 * then reads as INTERNAL, the agent's own failure).
 */
export function storageError(err: unknown): unknown {
  if (err instanceof KindlingError || !isErrno(err)) return err;
  const details = { syscall: err.syscall, errno: err.code ?? null, ...(err.path ? { path: err.path } : {}) };
  return new BackendError(err.message, details, { cause: err });
}

/**
 * The driver as the service sees it: every failure of a call typed as the driver contract says. One
 * wrapper here instead of a try/catch around each file call in each driver. A Proxy rather than a
 * wrapper class: it covers every driver method, including ones added later, without listing them, and
 * calls each on the real driver, so `this` and its state are unchanged; only how failures are typed changes.
 */
export function withStorageErrors(driver: Driver): Driver {
  return new Proxy(driver, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        try {
          const out: unknown = value.apply(target, args);
          return out instanceof Promise ? out.catch((err: unknown) => Promise.reject(storageError(err))) : out;
        } catch (err) {
          throw storageError(err);
        }
      };
    },
  });
}
