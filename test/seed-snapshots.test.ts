import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type Backend } from '@kindling/sdk';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// cinderlib's own page on snapshots (shared/seed-snapshots.txt), over a real socket to a real agent.
let agentProc: AgentProcess;
let agent: Agent;
let lvm: Backend;

beforeAll(async () => {
  agentProc = await startAgentProcess();
  agent = await Agent.connect(agentProc.url);
  lvm = await agent.backend('nfs');
});
afterAll(async () => {
  await agent?.close();
  await agentProc?.dispose();
});

describe('seed: snapshots', () => {
  it('create: the returned snapshot is the one tracked in vol.snapshots, and it points at the very volume', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    expect(snap).toBe([...vol.snapshots][0]);
    expect(snap.volume).toBe(vol);
  });

  it('delete: removes the snapshot from the volume snapshots set', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    expect(vol.snapshots.size).toBe(1);
    await snap.delete();
    expect(vol.snapshots.size).toBe(0);
    expect(snap.status).toBe('deleted');
  });
});
