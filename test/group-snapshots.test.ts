import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, InvalidArgumentError, NotFoundError } from '@kindling/sdk';
import { readsPattern, writePattern } from '@kindling/agent/testing';
import { runCli } from '../packages/cli/src/testing/run-cli.js';
import { TEST_TOKEN, startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Issue 21 item 3 through a real agent process (NFS on a local-folder share): the SDK's
// `agent.createGroupSnapshot`, its restore, and `kindling snapshot create --group`.

describe('group snapshots', () => {
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

  it('cuts each member as a normal Snapshot of that very Volume, restores every member, and deletes them all', async () => {
    const nfs = await agentA.backend('nfs');
    const data = await nfs.createVolume({ size: 1, name: 'data' });
    const wal = await nfs.createVolume({ size: 1, name: 'wal' });
    await writePattern(join(a.dir, 'share'), data.toDict(), 0x21);
    await writePattern(join(a.dir, 'share'), wal.toDict(), 0x22);

    const group = await agentA.createGroupSnapshot([data, wal], { name: 'db' });
    expect(group).toMatchObject({ name: 'db', status: 'available' });
    expect(group.snapshots.map((s) => s.volume)).toEqual([data, wal]);
    expect(group.snapshots[0]).toBe([...data.snapshots][0]);
    expect(group.snapshots[1]).toBe([...wal.snapshots][0]);
    // Written after the cut: the restore must not show it.
    await writePattern(join(a.dir, 'share'), data.toDict(), 0x31);

    const loaded = await agentA.groupSnapshot(group.id);
    expect(loaded.snapshots).toEqual(group.snapshots);

    const restored = await group.createVolumes();
    expect(restored.map((v) => v.snapshotId)).toEqual(group.snapshots.map((s) => s.id));
    expect(await readsPattern(join(a.dir, 'share'), restored[0]!.toDict(), 0x21)).toBe(true);
    expect(await readsPattern(join(a.dir, 'share'), restored[1]!.toDict(), 0x22)).toBe(true);

    await group.delete();
    expect(group.status).toBe('deleted');
    expect(group.snapshots.map((s) => s.status)).toEqual(['deleted', 'deleted']);
    expect(data.snapshots.size + wal.snapshots.size).toBe(0);
    await expect(agentA.groupSnapshot(group.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses members on several agents, naming them, and takes no snapshot', async () => {
    const here = await (await agentA.backend('nfs')).createVolume({ size: 1 });
    const there = await (await agentB.backend('nfs')).createVolume({ size: 1 });
    const refused = agentA.createGroupSnapshot([here, there]);
    await expect(refused).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(refused).rejects.toThrow(new RegExp(`not: ${there.id} \\(on ${b.url}\\)`));
    await here.refresh();
    await there.refresh();
    expect(here.snapshots.size + there.snapshots.size).toBe(0);
  });

  it('kindling snapshot create --group cuts every volume named; without --group several volumes are refused', async () => {
    const kindling = (...args: string[]) => runCli(['--agents', a.url, ...args], { env: { KINDLING_TOKEN: TEST_TOKEN } });
    for (const name of ['cli-1', 'cli-2']) expect((await kindling('volume', 'create', '--size', '1', '--name', name, '--backend', 'nfs')).code).toBe(0);

    const made = await kindling('snapshot', 'create', '--group', 'cli-1', 'cli-2', '--name', 'pair', '--json');
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    const group = JSON.parse(made.stdout) as { kind: string; id: string; status: string; snapshots: { name: string; volumeId: string; status: string }[] };
    expect(group).toMatchObject({ kind: 'groupSnapshot', status: 'available' });
    expect(group.snapshots.map((s) => [s.name, s.status])).toEqual([
      ['pair', 'available'],
      ['pair', 'available'],
    ]);

    const several = await kindling('snapshot', 'create', 'cli-1', 'cli-2');
    expect(several.code).not.toBe(0);
    expect(several.stderr).toContain('several need --group');
  }, 60_000);
});
