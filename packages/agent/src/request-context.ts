import { AsyncLocalStorage } from 'node:async_hooks';
import type { OpName } from '@kindling/protocol';
import type { RequestMark } from './index/store.js';

/**
 * The client request the current code runs for, set by the rpc layer around a handler: read where a
 * layer below needs it without threading it through each call (progress reports, cancellation of a
 * request still waiting for its locks).
 */
export interface RequestContext {
  op: OpName;
  requestId?: string;
  /** Aborted when the client cancels the request (`request.cancel`). */
  signal?: AbortSignal;
  /** True while the request waits for the service locks its operation needs: nothing has started yet. */
  queued: boolean;
  /** The request's ledger entry for `record` (only with a requestId): see requestMark. */
  mark?: (record: { id: string }) => RequestMark;
}

const current = new AsyncLocalStorage<RequestContext>();

export const inRequest = <T>(context: RequestContext, fn: () => T): T => current.run(context, fn);

export const currentRequest = (): RequestContext | undefined => current.getStore();

/**
 * What the service writes with the first change a mutating op makes (its transient status, or a
 * disconnect's removal), in the same batch: the request's ledger entry naming `record`. A retry after a
 * crash then finds the entry exactly when the change was made, and answers from it (rpc/requests.ts).
 * Undefined outside a request with a requestId.
 */
export const requestMark = (record: { id: string }): RequestMark | undefined => current.getStore()?.mark?.(record);
