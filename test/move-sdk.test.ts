import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type Progress } from '@kindling/sdk';
import { readsPattern, writePattern } from '@kindling/agent/testing';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Issue 22 through the SDK: `vol.clone({ backend })` and `snap.createVolume({ backend })` with a backend
// of another connected agent copy agent to agent and hand back the new Volume of the target's identity map.

describe('SDK copies to a backend of another agent', () => {
  let a: AgentProcess;
  let b: AgentProcess;
  let agentA: Agent;
  let agentB: Agent;

  beforeAll(async () => {
    [a, b] = await Promise.all([startAgentProcess(), startAgentProcess()]);
    [agentA, agentB] = await Promise.all([Agent.connect(a.url), Agent.connect(b.url)]);
  });
  afterAll(async () => {
    await Promise.all([agentA?.close(), agentB?.close()]);
    await Promise.all([a?.dispose(), b?.dispose()]);
  });

  it('vol.clone({ backend }) makes the copy on the other agent, with progress on both sides', async () => {
    const vol = await (await agentA.backend('nfs')).createVolume({ size: 1, name: 'src' });
    await writePattern(join(a.dir, 'share'), vol.toDict(), 0x6b);
    const target = await agentB.backend('nfs');
    const heard: Progress[] = [];
    const sourceSide: Progress[] = [];
    vol.on('progress', (p: Progress) => sourceSide.push(p));
    const copy = await vol.clone({ backend: target, name: 'copy', onProgress: (p) => heard.push(p) });

    expect(copy.backend).toBe(target);
    expect(copy.backend.agent).toBe(agentB);
    expect(copy).toMatchObject({ status: 'available', name: 'copy', size: 1 });
    expect(await readsPattern(join(b.dir, 'share'), copy.toDict(), 0x6b)).toBe(true);
    // The one object of that id in the target's identity map.
    expect((await target.volumes()).find((v) => v.id === copy.id)).toBe(copy);
    expect(heard.at(-1)).toMatchObject({ op: 'volume.copyFrom', id: copy.id, doneBytes: copy.size * 1024 ** 3 });
    expect(sourceSide.some((p) => p.op === 'transfer.open' && p.id === vol.id)).toBe(true);
    // The source is untouched and a same-backend clone is the agent's own clone, as before.
    expect(vol.status).toBe('available');
    const local = await vol.clone();
    expect(local.backend).toBe(vol.backend);
    expect(local.sourceVolId).toBe(vol.id);
  });

  it('snap.createVolume({ backend }) copies the snapshot as it was taken', async () => {
    const vol = await (await agentA.backend('nfs')).createVolume({ size: 1 });
    await writePattern(join(a.dir, 'share'), vol.toDict(), 0x21);
    const snap = await vol.createSnapshot();
    await writePattern(join(a.dir, 'share'), vol.toDict(), 0x22);
    const copy = await snap.createVolume({ backend: await agentB.backend('nfs'), size: 2 });
    expect(copy).toMatchObject({ status: 'available', size: 2 });
    expect(await readsPattern(join(b.dir, 'share'), copy.toDict(), 0x21)).toBe(true);
  });
});
