import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ConflictError, Fleet, NotFoundError, type Progress } from '@kindling/sdk';
import { readsPattern, writePattern } from '@kindling/agent/testing';
import { runCli } from '../packages/cli/src/testing/run-cli.js';
import { TEST_TOKEN, startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Issue 22 through the SDK and the CLI: `vol.clone({ backend })` and `snap.createVolume({ backend })` with a backend
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

  it('a Fleet hands out target backends of its other agents, and fleet.agentOf the copy names the target', async () => {
    const fleet = await Fleet.connect([a.url, b.url]);
    try {
      const { backends } = await fleet.backends();
      const onA = backends.find((x) => x.agent.hostId === a.hostId)!;
      const onB = backends.find((x) => x.agent.hostId === b.hostId)!;
      const vol = await onA.createVolume({ size: 1 });
      await writePattern(join(a.dir, 'share'), vol.toDict(), 0x19);
      const copy = await vol.clone({ backend: onB });
      expect(fleet.agentOf(copy).hostId).toBe(b.hostId);
      expect(await readsPattern(join(b.dir, 'share'), copy.toDict(), 0x19)).toBe(true);
    } finally {
      await fleet.close();
    }
  });

  it('vol.migrate({ backend }) moves it with its name and metadata, deleting the old one only after the copy', async () => {
    const source = await agentA.backend('nfs');
    const vol = await source.createVolume({ size: 1, name: 'mover', description: 'd', metadata: { app: 'db' } });
    await writePattern(join(a.dir, 'share'), vol.toDict(), 0x77);
    const target = await agentB.backend('nfs');
    const moved = await vol.migrate({ backend: target });
    expect(moved.backend).toBe(target);
    expect(moved).toMatchObject({ status: 'available', name: 'mover', description: 'd', metadata: { app: 'db' }, size: 1 });
    expect(await readsPattern(join(b.dir, 'share'), moved.toDict(), 0x77)).toBe(true);
    expect(vol.status).toBe('deleted');
    await expect(source.volumesFiltered({ volumeId: vol.id })).resolves.toEqual([]);
    await expect(vol.refresh()).rejects.toBeInstanceOf(NotFoundError);
  });

  it('vol.migrate refuses a volume with snapshots (naming them) or attached, and changes nothing', async () => {
    const source = await agentA.backend('nfs');
    const target = await agentB.backend('nfs');
    const before = (await target.volumes()).length;
    const withSnap = await source.createVolume({ size: 1 });
    const snap = await withSnap.createSnapshot();
    const refused = await withSnap.migrate({ backend: target }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ConflictError);
    expect((refused as ConflictError).message).toContain(snap.id);
    const attached = await source.createVolume({ size: 1 });
    await attached.attach();
    await expect(attached.migrate({ backend: target })).rejects.toBeInstanceOf(ConflictError);
    expect([withSnap.status, attached.status]).toEqual(['available', 'in-use']);
    expect((await target.volumes()).length).toBe(before);
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

const kindling = (...args: string[]) => runCli(args, { env: { KINDLING_TOKEN: TEST_TOKEN } });

describe('kindling volume copy', () => {
  let a: AgentProcess;
  let b: AgentProcess;
  beforeAll(async () => {
    [a, b] = await Promise.all([startAgentProcess(), startAgentProcess()]);
  });
  afterAll(async () => {
    await Promise.all([a?.dispose(), b?.dispose()]);
  });

  it('copies a volume to <agent>/<backend> of another agent, and migrates it back', async () => {
    const agents = `${a.url},${b.url}`;
    const made = await kindling('--agents', a.url, 'volume', 'create', '--size', '1', '--name', 'here', '--backend', 'nfs', '--json');
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    const source = JSON.parse(made.stdout) as { id: string; location: Record<string, unknown>; agent: { url: string } };
    expect(source.agent.url).toBe(a.url);
    await writePattern(join(a.dir, 'share'), source, 0x4e);

    const copied = await kindling('--agents', agents, 'volume', 'copy', 'here', '--to', `${b.hostId}/nfs`, '--name', 'there', '--json');
    expect(copied.stderr).toBe('');
    expect(copied.code).toBe(0);
    const copy = JSON.parse(copied.stdout) as { id: string; name: string; status: string; location: Record<string, unknown>; agent: { url: string } };
    expect(copy).toMatchObject({ name: 'there', status: 'available', agent: { url: b.url } });
    expect(await readsPattern(join(b.dir, 'share'), copy, 0x4e)).toBe(true);

    // And back again, by name, with migrate: the volume leaves B for A.
    const back = await kindling('--agents', agents, 'volume', 'migrate', 'there', '--to', `${a.url}/nfs`, '--json');
    expect(back.stderr).toBe('');
    const returned = JSON.parse(back.stdout) as { id: string; name: string; location: Record<string, unknown>; agent: { url: string } };
    expect(returned).toMatchObject({ name: 'there', agent: { url: a.url } });
    expect(await readsPattern(join(a.dir, 'share'), returned, 0x4e)).toBe(true);
    expect((await kindling('--agents', b.url, 'volume', 'show', copy.id)).code).not.toBe(0);

    const unknown = await kindling('--agents', agents, 'volume', 'copy', 'here', '--to', `${b.hostId}/nope`);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('has no backend nope');
    // Seven CLI runs against two agents: more than the default deadline on a loaded machine.
  }, 90_000);
});
