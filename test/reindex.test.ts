import { spawnSync } from 'node:child_process';
import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '@kindling/sdk';
import { AGENT_BIN, startAgentProcess, type AgentProcess } from './support/agent-process.js';

let proc: AgentProcess;

beforeAll(async () => {
  proc = await startAgentProcess();
});
afterAll(async () => {
  await proc?.dispose();
});

const reindex = () => {
  const result = spawnSync(process.execPath, [AGENT_BIN, 'reindex', '--config', join(proc.dir, 'agent.json')], { encoding: 'utf8' });
  return { status: result.status, report: result.stdout ? (JSON.parse(result.stdout) as { backends: Report[] }) : null, stderr: result.stderr };
};
interface Report {
  backend: string;
  missingFromIndex: { kind: string; id: string }[];
  missingFromStorage: { kind: string; id: string }[];
}

describe('kindling-agent reindex', () => {
  it('rebuilds a lost index from the volume files and .info records, and reports what storage lacks', async () => {
    let agent = await Agent.connect(proc.url);
    const nfs = await agent.backend('nfs');
    const vol = await nfs.createVolume({ size: 1, name: 'keep' });
    const snap = await vol.createSnapshot();
    const doomed = await nfs.createVolume({ size: 2 });
    await agent.close();
    await proc.stop();

    // The index is lost; storage still holds both volumes and the snapshot.
    await rm(join(proc.dir, 'data', 'index'), { recursive: true });
    let run = reindex();
    expect(run.status).toBe(1);
    expect(run.report!.backends[0]!.missingFromIndex).toEqual(
      expect.arrayContaining([
        { kind: 'volume', id: vol.id },
        { kind: 'volume', id: doomed.id },
        { kind: 'snapshot', id: snap.id },
      ]),
    );
    // Rebuilt: a second run finds nothing to add.
    expect(reindex().status).toBe(0);

    // Storage loses a volume behind the agent's back: reported, never "fixed" by deleting anything.
    await unlink(join(proc.dir, 'share', `volume-${doomed.id}`));
    run = reindex();
    expect(run.status).toBe(1);
    expect(run.report!.backends[0]!.missingFromStorage).toEqual([{ kind: 'volume', id: doomed.id, status: 'available' }]);

    proc = await proc.restart();
    agent = await Agent.connect(proc.url);
    const listed = await (await agent.backend('nfs')).volumes();
    const rebuilt = listed.find((v) => v.id === vol.id)!;
    expect(rebuilt.size).toBe(1);
    expect([...rebuilt.snapshots].map((s) => s.id)).toEqual([snap.id]);
    await agent.close();
  });

  it('refuses to run while an agent holds the index', async () => {
    const run = reindex();
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/cannot open the index/);
    expect(run.stderr).toMatch(/agent running/);
  });
});
