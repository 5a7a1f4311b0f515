// The agent's per-request breakdown (packages/agent/src/cost.ts): an agent started while `recordCosts` is
// open appends one JSON line per request to its file; `printCosts` prints the mean of each part per op.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt } from './stats.mjs';

const PHASES = ['rpcIn', 'validate', 'locks', 'index', 'launch', 'command', 'flush', 'events', 'rpcOut'];

/** Sets KINDLING_COST_LOG for the agents `start` spawns (and only them); returns the file's reader. */
export async function recordCosts(start) {
  const dir = mkdtempSync(join(tmpdir(), 'kindling-cost-'));
  const file = join(dir, 'cost.jsonl');
  process.env.KINDLING_COST_LOG = file;
  try {
    const started = await start();
    return { started, read: () => readCosts(file), dispose: () => rmSync(dir, { recursive: true, force: true }) };
  } finally {
    delete process.env.KINDLING_COST_LOG;
  }
}

function readCosts(file) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // No request recorded.
  }
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

/** One block per op in `ops`: mean milliseconds of each part, the rest (service and driver code), batches. */
export function printCosts(say, costs, ops) {
  say('  agent-side breakdown per request (means; "rest" = service and driver code between the parts):');
  for (const op of ops) {
    const mine = costs.filter((c) => c.op === op);
    if (mine.length === 0) continue;
    const mean = (key) => mine.reduce((s, c) => s + c[key], 0) / mine.length;
    const rest = mean('totalMs') - PHASES.reduce((s, p) => s + mean(p), 0);
    const parts = PHASES.filter((p) => mean(p) > 0).map((p) => `${p} ${fmt(mean(p))}`);
    say(`    ${op.padEnd(14)} total ${fmt(mean('totalMs'))} = ${[...parts, `rest ${fmt(rest)}`].join(' + ')}`);
    say(`    ${''.padEnd(14)} synced index batches ${mean('syncedBatches').toFixed(1)}, storage flushes ${mean('flushes').toFixed(1)}, commands ${mean('commands').toFixed(1)} (n=${mine.length})`);
  }
}
