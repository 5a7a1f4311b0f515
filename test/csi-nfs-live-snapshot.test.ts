import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { requires } from '@kindling/agent/testing';
import { Agent } from '@kindling/sdk';
import type { CsiServer } from '../packages/csi/src/index.js';
import { TOPOLOGY_KEY } from '../packages/csi/src/plugin.js';
import { startBin, type CsiBin } from '../packages/csi/src/testing/bin.js';
import { codeOf, csiClient, status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { daemonsWith, nodeUnavailable } from '../packages/csi/src/testing/host.js';
import { TEST_TOKEN, type AgentProcess } from './support/agent-process.js';
import { startCsiFileHost, type CsiFileHost } from './support/csi-file-host.js';

// Issue 21: a VolumeSnapshot of a mounted NFS PVC. The node serves every file volume through a real
// qemu-storage-daemon (FUSE export, loop device, ext4 mounted); the agent switches the daemon's writes
// to the snapshot's new overlay over its QMP socket. Then the agent SIGKILLed at each step of that
// (fault points), and a node plugin killed mid-stage with a snapshot taken before it came back.
const GiB = 1024 ** 3;
const ext4 = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };

let host: CsiFileHost;
let agent: AgentProcess;
let url: string;
let server: CsiServer;
let dir: string;
let stateDir: string;
let controller: CsiServiceClient;
let node: CsiServiceClient;
let count = 0;

const uuidOf = (volumeId: string): string => volumeId.split(':')[2]!;
const shareOf = (backend: string): string => join(agent.dir, backend === 'nfs' ? 'share' : 'share-qcow2');
const create = async (backend: string, source?: object) =>
  (
    await controller.CreateVolume({
      name: `pvc-live-${process.pid}-${++count}`,
      volumeCapabilities: [ext4],
      capacityRange: { requiredBytes: GiB },
      parameters: { backend },
      accessibilityRequirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }] },
      ...(source ? { volumeContentSource: source } : {}),
    })
  ).volume as { volumeId: string };
const stageOf = async (volumeId: string) => {
  const base = join(dir, `v${++count}`);
  await mkdir(base, { recursive: true });
  return { volumeId, stagingTargetPath: join(base, 'staging'), volumeCapability: ext4 };
};
/** Written through the mounted filesystem and flushed to the volume (the loop device, the daemon, the file). */
const put = async (staging: string, name: string, text: string): Promise<void> => {
  await writeFile(join(staging, name), text);
  execFileSync('sync', ['-f', join(staging, name)]);
};
const names = async (staging: string): Promise<string[]> => (await readdir(staging)).filter((n) => n !== 'lost+found').sort();
/** qemu's own check of every qcow2 file of the volume on its share. */
const checkChain = async (backend: string, volumeId: string): Promise<void> => {
  for (const f of await readdir(shareOf(backend))) {
    if (!f.startsWith(`volume-${uuidOf(volumeId)}`) || f.endsWith('.info')) continue;
    const head = (await readFile(join(shareOf(backend), f))).subarray(0, 4);
    if (head.equals(Buffer.from('QFI\xfb', 'latin1'))) execFileSync('qemu-img', ['check', '-q', '-U', '-f', 'qcow2', join(shareOf(backend), f)]);
  }
};
/** A snapshot's content restored to a new volume, staged: the names it holds. */
const restored = async (snapshotId: string): Promise<string[]> => {
  const copy = await create('nfs', { snapshot: { snapshotId } });
  const stage = await stageOf(copy.volumeId);
  await node.NodeStageVolume(stage);
  const seen = await names(stage.stagingTargetPath);
  await node.NodeUnstageVolume(stage);
  await controller.DeleteVolume({ volumeId: copy.volumeId });
  return seen;
};

requires('the CSI node tests (loop devices, mkfs, mount, qemu-storage-daemon)', nodeUnavailable(), describe, describe.skip)('snapshots of mounted NFS volumes (qemu-storage-daemon switched live)', () => {
  beforeAll(async () => {
    host = await startCsiFileHost('kindling-csi-live-');
    ({ dir, stateDir, agent, server, controller, node } = host);
    url = agent.url;
  });

  afterAll(() => host?.close());

  for (const backend of ['nfs', 'nfs-qcow2']) {
    it(`${backend}: two snapshots of a mounted volume, each restoring exactly the data written before it, the daemon kept throughout`, async () => {
      const vol = await create(backend);
      const stage = await stageOf(vol.volumeId);
      await node.NodeStageVolume(stage);
      const [daemon] = daemonsWith(uuidOf(vol.volumeId));
      await put(stage.stagingTargetPath, 'first', 'before the first snapshot');
      const one = (await controller.CreateSnapshot({ sourceVolumeId: vol.volumeId, name: `snap-live-${process.pid}-${++count}` })).snapshot;
      await put(stage.stagingTargetPath, 'second', 'between the snapshots');
      // Not flushed: the snapshot freezes the mounted filesystem, which flushes it, so it is in.
      await writeFile(join(stage.stagingTargetPath, 'unflushed'), 'in the page cache only');
      const two = (await controller.CreateSnapshot({ sourceVolumeId: vol.volumeId, name: `snap-live-${process.pid}-${++count}` })).snapshot;
      await put(stage.stagingTargetPath, 'third', 'after both');
      // The same daemon, now writing the second snapshot's overlay.
      expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([daemon]);
      expect(await restored(one.snapshotId)).toEqual(['first']);
      expect(await restored(two.snapshotId)).toEqual(['first', 'second', 'unflushed']);
      // Deleted while mounted: the oldest (the daemon commits its overlay into the base and re-points
      // the next overlay); the latest is refused while mounted (its overlay is the file written to),
      // and deleted once unstaged.
      await controller.DeleteSnapshot({ snapshotId: one.snapshotId });
      expect(await restored(two.snapshotId)).toEqual(['first', 'second', 'unflushed']);
      await put(stage.stagingTargetPath, 'fourth', 'after the first delete');
      const refused = await controller.DeleteSnapshot({ snapshotId: two.snapshotId }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringContaining('latest snapshot') });
      await put(stage.stagingTargetPath, 'fifth', 'after the refusal');
      expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([daemon]);
      await node.NodeUnstageVolume(stage);
      expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([]);
      await controller.DeleteSnapshot({ snapshotId: two.snapshotId });
      // Only the base is left (with its record), whole.
      expect((await readdir(shareOf(backend))).filter((f) => f.startsWith(`volume-${uuidOf(vol.volumeId)}`)).sort()).toEqual(
        [`volume-${uuidOf(vol.volumeId)}`, `volume-${uuidOf(vol.volumeId)}.info`],
      );
      await checkChain(backend, vol.volumeId);
      // Staged again from the files alone: everything the pod wrote.
      await node.NodeStageVolume(stage);
      expect(await names(stage.stagingTargetPath)).toEqual(['fifth', 'first', 'fourth', 'second', 'third', 'unflushed']);
      await node.NodeUnstageVolume(stage);
      await controller.DeleteVolume({ volumeId: vol.volumeId });
    });
  }

  it('a group snapshot of two mounted NFS volumes: both frozen, both switched, each restoring its data', async () => {
    const groups = csiClient('GroupController', server.address);
    try {
      const vols = [await create('nfs'), await create('nfs-qcow2')];
      const stages = [await stageOf(vols[0]!.volumeId), await stageOf(vols[1]!.volumeId)];
      for (const [i, stage] of stages.entries()) {
        await node.NodeStageVolume(stage);
        await writeFile(join(stage.stagingTargetPath, `member-${i}`), 'not flushed before the cut');
      }
      const { groupSnapshot } = await groups.CreateVolumeGroupSnapshot({ name: `group-live-${process.pid}`, sourceVolumeIds: vols.map((v) => v.volumeId) });
      for (const stage of stages) await put(stage.stagingTargetPath, 'after', 'after the cut');
      const members = groupSnapshot.snapshots as { snapshotId: string; sourceVolumeId: string }[];
      for (const [i, vol] of vols.entries()) {
        const member = members.find((m) => m.sourceVolumeId === vol.volumeId)!;
        const copy = await create(i === 0 ? 'nfs' : 'nfs-qcow2', { snapshot: { snapshotId: member.snapshotId } });
        const stage = await stageOf(copy.volumeId);
        await node.NodeStageVolume(stage);
        expect(await names(stage.stagingTargetPath)).toEqual([`member-${i}`]);
        await node.NodeUnstageVolume(stage);
        await controller.DeleteVolume({ volumeId: copy.volumeId });
      }
      for (const stage of stages) await node.NodeUnstageVolume(stage);
      await groups.DeleteVolumeGroupSnapshot({ groupSnapshotId: groupSnapshot.groupSnapshotId, snapshotIds: members.map((m) => m.snapshotId) });
      for (const vol of vols) await controller.DeleteVolume({ volumeId: vol.volumeId });
    } finally {
      groups.close();
    }
  });

  it('a group snapshot of a volume staged as a block device is refused: its writes cannot be held', async () => {
    const groups = csiClient('GroupController', server.address);
    try {
      const vols = [await create('nfs'), await create('nfs')];
      const block = { block: {}, accessMode: { mode: 'SINGLE_NODE_WRITER' } };
      const stage = { ...(await stageOf(vols[0]!.volumeId)), volumeCapability: block };
      await node.NodeStageVolume(stage);
      const err = await groups.CreateVolumeGroupSnapshot({ name: `group-block-${process.pid}`, sourceVolumeIds: vols.map((v) => v.volumeId) }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringContaining('block device') });
      await node.NodeUnstageVolume(stage);
      // Nothing was cut: both volumes delete (a volume with a snapshot would not).
      for (const vol of vols) await controller.DeleteVolume({ volumeId: vol.volumeId });
    } finally {
      groups.close();
    }
  });

  // The agent SIGKILLs itself at a fault point of the live snapshot (KINDLING_NFS_FAULT) and starts again.
  for (const [point, outcome] of [
    ['snapshot-create:overlay-made', 'error'],
    ['snapshot-create:switched', 'available'],
  ] as const) {
    it(`the agent killed at ${point}: the snapshot is ${outcome}, the pod's writes go on and are kept`, async () => {
      const vol = await create('nfs');
      const stage = await stageOf(vol.volumeId);
      await node.NodeStageVolume(stage);
      const [daemon] = daemonsWith(uuidOf(vol.volumeId));
      await put(stage.stagingTargetPath, 'first', 'before the snapshot');

      agent = await host.restartAgent({ KINDLING_NFS_FAULT: point });
      const sdk = await Agent.connect(url, { token: TEST_TOKEN });
      const [volume] = await (await sdk.backend('nfs')).volumesFiltered({ volumeId: uuidOf(vol.volumeId) });
      const dead = new Promise<void>((resolve) => agent.child.once('exit', () => resolve()));
      void volume!.createSnapshot({ name: `cut-${point}` }).catch(() => undefined);
      await dead;
      await sdk.close();
      expect(agent.child.signalCode).toBe('SIGKILL');
      await put(stage.stagingTargetPath, 'second', 'while the agent was down');

      agent = await host.restartAgent({});
      // The plugins dial the agent again in the background.
      // (GetCapacity of the host's segment is UNAVAILABLE until its agent answers again; a listing is not.)
      await vi.waitFor(() => controller.GetCapacity({ accessibleTopology: { segments: { [TOPOLOGY_KEY]: 'node-a' } } }), { timeout: 20_000, interval: 250 });
      const again = await Agent.connect(url, { token: TEST_TOKEN });
      const [snap] = await vi.waitFor(
        async () => {
          const found = await (await again.backend('nfs')).snapshotsFiltered({ snapshotName: `cut-${point}` });
          expect(found.map((s) => s.status)).toEqual([outcome]);
          return found;
        },
        { timeout: 20_000, interval: 200 },
      );
      await again.close();
      const info = JSON.parse(await readFile(join(shareOf('nfs'), `volume-${uuidOf(vol.volumeId)}.info`), 'utf8').catch(() => '{}')) as Record<string, string>;
      if (outcome === 'available') expect(info['active']).toBe(`volume-${uuidOf(vol.volumeId)}.${snap!.id}`);
      else expect(info['active'] ?? `volume-${uuidOf(vol.volumeId)}`).toBe(`volume-${uuidOf(vol.volumeId)}`);
      // No overlay left that no record names, no claim: the share holds what the record says.
      const files = (await readdir(shareOf('nfs'))).filter((f) => f.startsWith(`volume-${uuidOf(vol.volumeId)}`)).sort();
      expect(files).toEqual([`volume-${uuidOf(vol.volumeId)}`, ...Object.values(info).filter((f, i, all) => all.indexOf(f) === i && f !== `volume-${uuidOf(vol.volumeId)}`), ...(Object.keys(info).length ? [`volume-${uuidOf(vol.volumeId)}.info`] : [])].sort());
      expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([daemon]);
      await put(stage.stagingTargetPath, 'third', 'after the restart');
      if (outcome === 'available') expect(await restored(`node-a:nfs:${uuidOf(vol.volumeId)}:${snap!.id}`)).toEqual(['first']);
      await vi.waitFor(() => node.NodeUnstageVolume(stage), { timeout: 20_000, interval: 250 });
      await checkChain('nfs', vol.volumeId);
      await node.NodeStageVolume(stage);
      expect(await names(stage.stagingTargetPath)).toEqual(['first', 'second', 'third']);
      await node.NodeUnstageVolume(stage);
      await controller.DeleteSnapshot({ snapshotId: `node-a:nfs:${uuidOf(vol.volumeId)}:${snap!.id}` });
      await controller.DeleteVolume({ volumeId: vol.volumeId });
    });
  }

  it('the agent killed once the daemon committed a deleted snapshot, before its record: the retry finishes it, the data whole', async () => {
    const vol = await create('nfs');
    const stage = await stageOf(vol.volumeId);
    await node.NodeStageVolume(stage);
    await put(stage.stagingTargetPath, 'first', 'before the first snapshot');
    const snap = async () => (await controller.CreateSnapshot({ sourceVolumeId: vol.volumeId, name: `snap-live-${process.pid}-${++count}` })).snapshot as { snapshotId: string };
    const one = await snap();
    await put(stage.stagingTargetPath, 'second', 'before the second snapshot');
    const two = await snap();

    agent = await host.restartAgent({ KINDLING_NFS_FAULT: 'snapshot-delete:committed' });
    const sdk = await Agent.connect(url, { token: TEST_TOKEN });
    const [doomed] = await (await sdk.backend('nfs')).snapshotsFiltered({ snapshotId: one.snapshotId.split(':')[3]! });
    const dead = new Promise<void>((resolve) => agent.child.once('exit', () => resolve()));
    const outcome = await Promise.race([dead.then(() => 'died'), doomed!.delete().then(() => 'deleted', (e: unknown) => String(e))]);
    expect(outcome).toBe('died');
    await sdk.close();
    expect(agent.child.signalCode).toBe('SIGKILL');
    await put(stage.stagingTargetPath, 'third', 'while the agent was down');

    agent = await host.restartAgent({});
    await vi.waitFor(() => controller.GetCapacity({ accessibleTopology: { segments: { [TOPOLOGY_KEY]: 'node-a' } } }), { timeout: 20_000, interval: 250 });
    // The delete was cut: its snapshot is error_deleting (still listed), and deleting it again finishes.
    await vi.waitFor(() => controller.DeleteSnapshot({ snapshotId: one.snapshotId }), { timeout: 20_000, interval: 250 });
    expect((await controller.ListSnapshots({ sourceVolumeId: vol.volumeId })).entries.map((e: { snapshot: { snapshotId: string } }) => e.snapshot.snapshotId)).toEqual([two.snapshotId]);
    expect(await restored(two.snapshotId)).toEqual(['first', 'second']);
    await node.NodeUnstageVolume(stage);
    await checkChain('nfs', vol.volumeId);
    // The committed overlay is gone: the base, the second snapshot's overlay, the record.
    expect((await readdir(shareOf('nfs'))).filter((f) => f.startsWith(`volume-${uuidOf(vol.volumeId)}`))).toHaveLength(3);
    await node.NodeStageVolume(stage);
    expect(await names(stage.stagingTargetPath)).toEqual(['first', 'second', 'third']);
    await node.NodeUnstageVolume(stage);
    await controller.DeleteSnapshot({ snapshotId: two.snapshotId });
    await controller.DeleteVolume({ volumeId: vol.volumeId });
  });

  it('a node plugin killed mid-stage, a snapshot taken before it is back: the restarted plugin stages over the same daemon, now writing the overlay', async () => {
    const endpoint = `unix://${join(dir, 'bin.sock')}`;
    let bin: CsiBin | undefined;
    const startNode = async (env: Record<string, string> = {}): Promise<CsiServiceClient> => {
      bin = startBin(['--mode', 'node', '--endpoint', endpoint, '--node-agent', url, '--state-dir', stateDir], { KINDLING_TOKEN: TEST_TOKEN, ...env });
      await bin.listening;
      return csiClient('Node', endpoint);
    };
    try {
      const vol = await create('nfs');
      const stage = await stageOf(vol.volumeId);
      // Staged once and written, so the snapshot has data to hold.
      await node.NodeStageVolume(stage);
      await put(stage.stagingTargetPath, 'first', 'before the snapshot');
      await node.NodeUnstageVolume(stage);
      // Killed after the daemon and the loop device are up, before the mount.
      let plugin = await startNode({ KINDLING_CSI_FAULT: 'stage:attached' });
      expect(await codeOf(plugin.NodeStageVolume(stage))).not.toBe('ok');
      expect(await bin!.exit).toBe(null);
      plugin.close();
      const [daemon] = daemonsWith(uuidOf(vol.volumeId));
      expect(daemon).toBeDefined();
      // The volume is attached and served: the snapshot is taken live, while no plugin runs.
      const snap = (await controller.CreateSnapshot({ sourceVolumeId: vol.volumeId, name: `snap-live-${process.pid}-${++count}` })).snapshot;
      plugin = await startNode();
      await plugin.NodeStageVolume(stage);
      expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([daemon]);
      await put(stage.stagingTargetPath, 'second', 'after the snapshot');
      await plugin.NodeUnstageVolume(stage);
      plugin.close();
      expect(await restored(snap.snapshotId)).toEqual(['first']);
      await node.NodeStageVolume(stage);
      expect(await names(stage.stagingTargetPath)).toEqual(['first', 'second']);
      await node.NodeUnstageVolume(stage);
      await checkChain('nfs', vol.volumeId);
      await controller.DeleteSnapshot({ snapshotId: snap.snapshotId });
      await controller.DeleteVolume({ volumeId: vol.volumeId });
    } finally {
      bin?.child.kill('SIGKILL');
      await bin?.exit;
    }
  });
});
