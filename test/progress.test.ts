import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Progress } from '@kindling/protocol';
import { Agent } from '@kindling/sdk';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Long copies push how far they have got; SDK objects emit it.
let proc: AgentProcess;
let agent: Agent;
beforeAll(async () => {
  proc = await startAgentProcess();
  agent = await Agent.connect(proc.url);
});
afterAll(async () => {
  await agent?.close();
  await proc?.dispose();
});

describe('progress of long copies', () => {
  it('a clone reports bytes done of the whole volume, on the source object and to the call, ending at 100%', async () => {
    const nfs = await agent.backend('nfs');
    const source = await nfs.createVolume({ size: 1 });
    const file = join(String(source.location.share), String(source.location.activeFile));
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 0 64M', file]);
    const onSource: Progress[] = [];
    const onCall: Progress[] = [];
    source.on('progress', (p) => onSource.push(p));
    const clone = await source.clone({ onProgress: (p) => onCall.push(p) });
    expect(onCall.length).toBeGreaterThan(0);
    expect(onCall.at(-1)).toMatchObject({ kind: 'volume', id: clone.id, op: 'volume.clone', doneBytes: 1024 ** 3, totalBytes: 1024 ** 3 });
    expect(onSource.map((p) => p.doneBytes)).toEqual(onCall.map((p) => p.doneBytes));
    await clone.delete();
    await source.delete();
  });
});
