import { BackendError, ConflictError, KindlingError, toErrorInfo, type ErrorInfo } from '@kindling/protocol';

interface Tracked {
  status: string;
  error: ErrorInfo | null;
  updatedAt: string;
}

export interface Transition<T extends Tracked> {
  record: T;
  /** Written (synced) and published before the driver runs, so a crash leaves a visible trace. */
  during: T['status'];
  work: () => Promise<Partial<T>>;
  /** The status to settle in, or a finisher that persists the end state itself (a delete removes the record). */
  success: T['status'] | ((during: T) => Promise<T>);
  failure: T['status'];
  /**
   * Puts things back as they were before the call (the pre-operation record, or no record for a
   * create). Used instead of the failure status when the driver refused before touching storage,
   * which drivers signal with ConflictError (no room, not the latest snapshot).
   */
  undo: () => Promise<void>;
  /** Added to a failure's details, so the caller learns which record was left in error (cinderlib's exception.resource). */
  subject: Record<string, string>;
  save: (record: T) => Promise<void>;
  publish: (record: T) => void;
}

export const now = (): string => new Date().toISOString();

/**
 * cinderlib's status machine for one driver call: transient status, then the target status with the
 * driver's result, or the failure status with the error kept; the call rejects with the driver's error.
 */
export async function transition<T extends Tracked>(t: Transition<T>): Promise<T> {
  const during: T = { ...t.record, status: t.during, updatedAt: now() };
  await t.save(during);
  t.publish(during);
  let changes: Partial<T>;
  try {
    changes = await t.work();
  } catch (err) {
    if (err instanceof ConflictError) {
      await t.undo();
      throw err;
    }
    const error = err instanceof KindlingError ? err : new BackendError(err instanceof Error ? err.message : String(err));
    Object.assign(error.details, t.subject);
    const failed: T = { ...during, status: t.failure, error: toErrorInfo(error), updatedAt: now() };
    await t.save(failed);
    t.publish(failed);
    throw error;
  }
  if (typeof t.success === 'function') return t.success(during);
  const done: T = { ...during, ...changes, status: t.success, error: null, updatedAt: now() };
  await t.save(done);
  t.publish(done);
  return done;
}
