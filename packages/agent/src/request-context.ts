import { AsyncLocalStorage } from 'node:async_hooks';
import type { OpName } from '@kindling/protocol';

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
}

const current = new AsyncLocalStorage<RequestContext>();

export const inRequest = <T>(context: RequestContext, fn: () => T): T => current.run(context, fn);

export const currentRequest = (): RequestContext | undefined => current.getStore();
