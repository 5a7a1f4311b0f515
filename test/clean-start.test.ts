import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ownerTag, partFile } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Recovery reads all of storage at start; after a stop that let every operation finish it has nothing to
// find, and a start with tens of thousands of volumes should not wait for that read.
let proc: AgentProcess | undefined;
afterAll(async () => {
  await proc?.dispose();
});

describe('start after a stop', () => {
  it('skips the storage scan after a clean stop, and runs it after a kill', async () => {
    proc = await startAgentProcess();
    const share = join(proc.dir, 'share');
    // What an interrupted create of this agent's leaves: recovery removes it whenever it scans.
    const partial = () => join(share, partFile(randomUUID(), ownerTag(proc!.hostId, 'nfs')));

    await proc.stop();
    const afterStop = partial();
    await writeFile(afterStop, '');
    proc = await proc.restart();
    expect(existsSync(afterStop)).toBe(true);

    await proc.kill();
    const afterKill = partial();
    await writeFile(afterKill, '');
    proc = await proc.restart();
    expect(existsSync(afterKill)).toBe(false);
    expect(existsSync(afterStop)).toBe(false);
  });
});
