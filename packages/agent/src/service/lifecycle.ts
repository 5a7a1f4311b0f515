import {
  ConflictError,
  InvalidArgumentError,
  KindlingError,
  UnsupportedError,
  asKindlingError,
  toErrorInfo,
  type ErrorInfo,
} from '@kindling/protocol';

import type { RequestMark } from '../index/store.js';
import { forSubject, type Subject } from '../progress.js';
import { requestMark } from '../request-context.js';

interface Tracked {
  id: string;
  status: string;
  error: ErrorInfo | null;
  updatedAt: string;
}

/** One driver call's path through the statuses, as the service that runs it describes it. */
export interface Step<T extends Tracked> {
  /** The record before the operation: the end and failure records are built from it. */
  record: T;
  /** Written (synced) and published before the driver runs, so a crash leaves a visible trace. */
  during: T['status'];
  /** Fields written with the transient status for recovery to act on (a revert's snapshot); dropped at the end. */
  note?: Partial<T>;
  work: () => Promise<Partial<T>>;
  failure: T['status'];
  /**
   * Puts things back as they were before the call (the pre-operation record, or no record for a
   * create). Used instead of the failure status when the driver refused before touching storage.
   */
  undo: () => Promise<void>;
  /**
   * After a failure that may have changed storage: the record settled against what storage holds
   * (recovery's rules), or null when storage does not hold the resource whole. Without it, or when it
   * gives null or cannot read storage, the record takes the failure status.
   */
  settleOnStorage?: () => Promise<T | null>;
}

/** How a successful call ends: one of two contracts. */
export type Ending<T extends Tracked> =
  /** The record settles in this status, with the work's changes and the error cleared. */
  | { settle: T['status']; finish?: never }
  /** The caller persists and publishes the end state itself (a delete removes the record) and returns it. */
  | { finish: (during: T) => Promise<T>; settle?: never };

export type Lifecycle<T extends Tracked> = Step<T> & Ending<T>;

export type Transition<T extends Tracked> = Lifecycle<T> & {
  /** Added to a failure's details, so the caller learns which record was left in error (cinderlib's exception.resource). */
  subject: Record<string, string>;
  /** `mark`, given with the transient status only, goes into the same batch (exactly-once retries). */
  save: (record: T, mark?: RequestMark) => Promise<void>;
  publish: (record: T) => void;
  /** The resource long copies in the work report progress for. */
  progress: Subject;
  /**
   * Records that the backend may now hold a leftover only a scan finds (the failed work's cleanup may
   * have failed too), so the next start scans it even after a clean stop.
   */
  oweScan: () => Promise<void>;
};

export const now = (): string => new Date().toISOString();

/**
 * A failure that changed nothing on storage: a refusal before any command ran (no room, not the latest
 * snapshot (conflict), a size that cannot hold the image (invalid argument), a feature switched off),
 * or a driver error that says so (`details.storageChanged === false`).
 */
const changedNothing = (err: unknown): boolean =>
  err instanceof ConflictError ||
  err instanceof InvalidArgumentError ||
  err instanceof UnsupportedError ||
  (err instanceof KindlingError && err.details.storageChanged === false);

/**
 * cinderlib's status machine for one driver call: transient status, then the end status with the
 * driver's result, or the failure status with the error kept; the call rejects with the driver's error.
 */
export async function transition<T extends Tracked>(t: Transition<T>): Promise<T> {
  const during: T = { ...t.record, ...t.note, status: t.during, updatedAt: now() };
  await t.save(during, requestMark(during));
  t.publish(during);
  let changes: Partial<T>;
  try {
    changes = await forSubject(t.progress, t.work);
  } catch (err) {
    if (changedNothing(err)) {
      await t.undo();
      throw err;
    }
    // A foreign error (a bug, the index) is INTERNAL, with its cause: never reported as a storage failure.
    const error = asKindlingError(err);
    Object.assign(error.details, t.subject);
    await t.oweScan();
    // The caller learns of the failure from the error; the record says what storage holds.
    const settled = await t.settleOnStorage?.().catch(() => null);
    const failed: T = settled ?? { ...t.record, status: t.failure, error: toErrorInfo(error), updatedAt: now() };
    await t.save(failed);
    t.publish(failed);
    throw error;
  }
  if (t.finish) return t.finish(during);
  const done: T = { ...t.record, ...changes, status: t.settle, error: null, updatedAt: now() };
  await t.save(done);
  t.publish(done);
  return done;
}
