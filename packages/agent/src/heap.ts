import { setFlagsFromString } from 'node:v8';

/**
 * V8 lets the old space grow to several times what a full collection left live before it collects
 * again: holding 100,000 volumes' index (~100 MB live), the garbage of the storage check after ready
 * and of a full listing took RSS from 160 to 290-430 MiB. Growth capped at 1.3x of the live heap
 * peaked at 235-257 MiB in the same runs, the collections' cost unseen in check and listing times
 * (docs/operations.md, "Sizing").
 */
const HEAP_GROWING_PERCENT = 30;

/**
 * Caps the heap's growth (read by V8 at each collection, so setting it at start works; node refuses it
 * in NODE_OPTIONS). Called before the agent's code loads, by the bin and by the build that makes the
 * code cache alike: V8 refuses a cache made under other flags. A value on node's own command line stands.
 */
export function capHeapGrowth(): void {
  if (!process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent'))) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
