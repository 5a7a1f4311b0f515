import { AsyncLocalStorage } from 'node:async_hooks';
import type { OpName } from '@kindling/protocol';
import type { Cost } from './cost.js';
import type { RequestMark } from './index/store.js';

/**
 * The client request the current code runs for. The rpc session sets it around each handler
 * (`inRequest`); three places below read it:
 * - progress.ts names the op and requestId on `progress` events of a copy deep in a driver;
 * - locks.ts flags the request `queued` while it waits for its resource locks and refuses it there
 *   when `signal` aborts (`request.cancel`): a cancel never interrupts storage work;
 * - the service's first write of a change takes the ledger's `mark` into its batch (`requestMark`).
 * Why not plain parameters: every service method and driver call between the session and those three
 * readers would take a context argument only to pass it on. Outside a request (recovery at start, a
 * test calling a service) nothing is set, and each reader does nothing.
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
  /** Where its time goes, only when the bench asks (cost.ts). */
  cost?: Cost;
}

const current = new AsyncLocalStorage<RequestContext>();

export const inRequest = <T>(context: RequestContext, fn: () => T): T => current.run(context, fn);

export const currentRequest = (): RequestContext | undefined => current.getStore();

/**
 * What the service writes with the first change a mutating op makes (its transient status, or the
 * connection it makes or removes), in the same batch: the request's ledger entry naming `record`. A retry after a
 * crash then finds the entry exactly when the change was made, and answers from it (rpc/requests.ts).
 * Undefined outside a request with a requestId.
 */
export const requestMark = (record: { id: string }): RequestMark | undefined => current.getStore()?.mark?.(record);

/**
 * Runs `fn` in the current request without its mark: an op made of others' steps (a group snapshot's
 * member snapshots) keeps the ledger entry naming its own record, not the last step's.
 */
export const withoutMark = <T>(fn: () => T): T => {
  const context = current.getStore();
  return context ? current.run({ ...context, mark: undefined }, fn) : fn();
};
