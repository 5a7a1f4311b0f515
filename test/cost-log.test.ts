import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent } from '@kindling/sdk';
import { startAgentProcess } from '@kindling/agent/testing';

const dir = mkdtempSync(join(tmpdir(), 'kindling-cost-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface CostLine {
  op: string;
  totalMs: number;
  syncedBatches: number;
  flushes: number;
  commands: number;
}

describe('the per-request cost log (KINDLING_COST_LOG, read by pnpm bench)', () => {
  it('writes one line per request; a create and a delete each make one synced batch before and one after', async () => {
    const file = join(dir, 'cost.jsonl');
    process.env.KINDLING_COST_LOG = file;
    const proc = await startAgentProcess().finally(() => delete process.env.KINDLING_COST_LOG);
    try {
      const agent = await Agent.connect(proc.url);
      const nfs = await agent.backend('nfs');
      const vol = await nfs.createVolume({ size: 1 });
      await vol.delete();
      await agent.close();
    } finally {
      await proc.dispose();
    }
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as CostLine);
    const byOp = (op: string) => lines.filter((l) => l.op === op);
    expect(byOp('volume.create')).toHaveLength(1);
    expect(byOp('volume.delete')).toHaveLength(1);
    // The request-id ledger entry rides in the intent's batch: not a third synced write.
    expect(byOp('volume.create')[0]?.syncedBatches).toBe(2);
    expect(byOp('volume.delete')[0]?.syncedBatches).toBe(2);
    expect(byOp('volume.create')[0]?.commands).toBeGreaterThanOrEqual(1);
    // NFS: the new file's data before its rename, the folder after it (recovery.md); a delete flushes nothing.
    expect(byOp('volume.create')[0]?.flushes).toBe(2);
    expect(byOp('volume.delete')[0]?.flushes).toBe(0);
  });
});
