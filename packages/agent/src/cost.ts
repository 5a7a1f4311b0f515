import { appendFileSync } from 'node:fs';
import { currentRequest } from './request-context.js';

/**
 * Where a request's time goes (issue 20), for `pnpm bench`: only when KINDLING_COST_LOG names a file does
 * the rpc session give each request a Cost; the layers below charge their part of the request to it, and
 * the session appends one JSON line per request to that file after its reply is sent. Unset (always, in
 * production), no Cost exists and every charge is a no-op lookup.
 */
export type Phase = 'rpcIn' | 'validate' | 'locks' | 'index' | 'launch' | 'command' | 'flush' | 'events' | 'rpcOut';

export class Cost {
  readonly ms: Record<Phase, number> = { rpcIn: 0, validate: 0, locks: 0, index: 0, launch: 0, command: 0, flush: 0, events: 0, rpcOut: 0 };
  syncedBatches = 0;
  /** A storage driver's own flushes (fsync, fdatasync) of files and folders on storage. */
  flushes = 0;
  commands = 0;

  add(phase: Phase, since: number): void {
    this.ms[phase] += performance.now() - since;
  }
}

const file = process.env.KINDLING_COST_LOG || undefined;

export const newCost = (): Cost | undefined => (file === undefined ? undefined : new Cost());

/** The cost of the request the current code runs for, if costs are recorded. */
export const requestCost = (): Cost | undefined => currentRequest()?.cost;

/** Runs a synced write or a flush, charging its time to `phase` and counting it, when costs are recorded. */
export async function charged(phase: Phase, counter: 'syncedBatches' | 'flushes', work: () => Promise<void>): Promise<void> {
  const cost = requestCost();
  const started = performance.now();
  await work();
  if (cost) {
    cost.add(phase, started);
    cost[counter]++;
  }
}

export function writeCost(op: string, totalMs: number, cost: Cost): void {
  if (file === undefined) return;
  appendFileSync(file, `${JSON.stringify({ op, totalMs, ...cost.ms, syncedBatches: cost.syncedBatches, flushes: cost.flushes, commands: cost.commands })}\n`);
}
