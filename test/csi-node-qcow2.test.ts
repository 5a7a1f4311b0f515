import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { requires } from '@kindling/agent/testing';
import { Agent } from '@kindling/sdk';
import { TOPOLOGY_KEY } from '../packages/csi/src/plugin.js';
import { startBin, type CsiBin } from '../packages/csi/src/testing/bin.js';
import { codeOf, csiClient, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { daemonsWith, nodeUnavailable } from '../packages/csi/src/testing/host.js';
import { TEST_TOKEN, type AgentProcess } from './support/agent-process.js';
import { startCsiFileHost, type CsiFileHost } from './support/csi-file-host.js';

// qcow2 volumes on the node for real: an NFS volume once snapshotted (its active file a qcow2 overlay
// over the raw base) and a qcow2 backend's volumes, served by a real qemu-storage-daemon's FUSE
// export, a real loop device over it, mkfs and mounts; node plugins killed and started again.
const GiB = 1024 ** 3;
const writer = { mode: 'SINGLE_NODE_WRITER' };
const ext4 = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: writer };
const xfs = { mount: { fsType: 'xfs', mountFlags: [] }, accessMode: writer };
const block = { block: {}, accessMode: writer };

let host: CsiFileHost;
let agent: AgentProcess;
let dir: string;
let stateDir: string;
let controller: CsiServiceClient;
let node: CsiServiceClient;
let sdk: Agent;
let count = 0;

const paths = async () => {
  const base = join(dir, `v${++count}`);
  await mkdir(join(base, 'pods'), { recursive: true });
  return { staging: join(base, 'staging'), target: join(base, 'pods', 'mount') };
};
const volume = async (backend: 'nfs' | 'nfs-qcow2', cap: object = ext4) =>
  (
    await controller.CreateVolume({
      name: `pvc-qcow2-${process.pid}-${++count}`,
      volumeCapabilities: [cap],
      capacityRange: { requiredBytes: GiB },
      parameters: { backend },
      accessibilityRequirements: { requisite: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }] },
    })
  ).volume;
const uuidOf = (volumeId: string): string => volumeId.split(':')[2]!;
/** Whether the volume's active file, as the agent's index names it, starts with qcow2's magic. */
const activeIsQcow2 = async (volumeId: string): Promise<boolean> => {
  const [v] = await (await sdk.backend('nfs')).volumesFiltered({ volumeId: uuidOf(volumeId) });
  const file = await open(join(agent.dir, 'share', String(v!.location['activeFile'])));
  const { buffer: head } = await file.read(Buffer.alloc(4), 0, 4, 0).finally(() => file.close());
  return head.equals(Buffer.from('QFI\xfb', 'latin1'));
};
const attached = async (volumeId: string): Promise<boolean> => {
  const [v] = await (await sdk.backend(volumeId.split(':')[1]!)).volumesFiltered({ volumeId: uuidOf(volumeId) });
  return v!.connections.some((c) => c.attached);
};
const loopsUnder = (path: string): string =>
  execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(path))
    .join('\n');
const fuseMounts = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(stateDir));
const isMountPoint = (path: string): boolean => {
  try {
    execFileSync('mountpoint', ['-q', path]);
    return true;
  } catch {
    return false;
  }
};
/** Nothing of the volume left on the node: no daemon, no export, no loop device, no attachment. */
const released = async (volumeId: string): Promise<void> => {
  expect(daemonsWith(uuidOf(volumeId))).toEqual([]);
  expect(fuseMounts()).toEqual([]);
  expect(existsSync(join(stateDir, `volume-${uuidOf(volumeId)}`))).toBe(false);
  expect(loopsUnder(uuidOf(volumeId))).toBe('');
  expect(await attached(volumeId)).toBe(false);
};

requires('the CSI node tests (loop devices, mkfs, mount, qemu-storage-daemon)', nodeUnavailable(), describe, describe.skip)('Node service on qcow2 volumes (qemu-storage-daemon, FUSE)', () => {
  beforeAll(async () => {
    host = await startCsiFileHost('kindling-csi-qcow2-');
    ({ dir, stateDir, agent, controller, node } = host);
    sdk = await Agent.connect(agent.url, { token: TEST_TOKEN });
  });

  afterAll(async () => {
    await sdk?.close();
    await host?.close();
  });

  it('stages an NFS volume after its first snapshot (a qcow2 overlay), keeps its data, and stops the daemon at unstage', async () => {
    const vol = await volume('nfs');
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 };
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    await writeFile(join(target, 'before'), 'written on the raw file');
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    // The PVC's first VolumeSnapshot: the volume's active file becomes a qcow2 overlay.
    await controller.CreateSnapshot({ sourceVolumeId: vol.volumeId, name: `snap-qcow2-${process.pid}-${++count}` });
    expect(await activeIsQcow2(vol.volumeId)).toBe(true);

    await node.NodeStageVolume(stage);
    await node.NodeStageVolume(stage);
    expect(daemonsWith(uuidOf(vol.volumeId))).toHaveLength(1);
    expect(loopsUnder(join(stateDir, `volume-${uuidOf(vol.volumeId)}`))).toMatch(/^\/dev\/loop\d+ /);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    expect(await readFile(join(target, 'before'), 'utf8')).toBe('written on the raw file');
    await writeFile(join(target, 'after'), 'written through the overlay');
    const bytes = (await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target })).usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(bytes.total).toBeGreaterThan(0.9 * GiB);
    expect(bytes.total).toBeLessThanOrEqual(GiB);
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    await node.NodeUnstageVolume(stage);
    expect(isMountPoint(staging)).toBe(false);
    await released(vol.volumeId);

    // What the daemon wrote is in the overlay: staged again, both files read back.
    await node.NodeStageVolume(stage);
    expect(await readFile(join(staging, 'after'), 'utf8')).toBe('written through the overlay');
    expect(await readFile(join(staging, 'before'), 'utf8')).toBe('written on the raw file');
    await node.NodeUnstageVolume(stage);
    await released(vol.volumeId);
  });

  it('stages and publishes a qcow2 volume as a block device of its full size', async () => {
    const vol = await volume('nfs-qcow2', block);
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: block };
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    expect((await stat(target)).isBlockDevice()).toBe(true);
    expect((await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target })).usage[0]).toMatchObject({ unit: 'BYTES', total: GiB });
    // Written through the device, read back from the qcow2 file by qemu itself.
    execFileSync('dd', ['if=/dev/urandom', `of=${target}`, 'bs=1M', 'count=4', 'seek=100', 'oflag=direct', 'status=none']);
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    await released(vol.volumeId);
    const file = join(agent.dir, 'share-qcow2', `volume-${uuidOf(vol.volumeId)}`);
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'qcow2', file], { encoding: 'utf8' })) as { start: number; length: number; data: boolean }[];
    expect(map.filter((m) => m.data).reduce((n, m) => n + m.length, 0)).toBe(4 * 1024 * 1024);
  });

  it('undoes a qcow2 stage that failed after the daemon started', async () => {
    const vol = await volume('nfs-qcow2');
    const { staging } = await paths();
    const bad = { ...ext4, mount: { fsType: 'ext4', mountFlags: ['no_such_option_here'] } };
    const err = await node.NodeStageVolume({ volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: bad }).catch((e: unknown) => e);
    // It got as far as the mount: the daemon, the loop and mkfs were done, and undone.
    expect((err as { details: string }).details).toMatch(/^mount .*no_such_option_here/);
    await released(vol.volumeId);
  });

  it('grows a staged qcow2 volume online: the daemon resizes the image, then the loop device and the filesystem follow', async () => {
    const vol = await volume('nfs-qcow2', xfs);
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: xfs };
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    await writeFile(join(target, 'before'), 'one GiB');
    const grown = await controller.ControllerExpandVolume({ volumeId: vol.volumeId, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: xfs });
    expect(grown).toMatchObject({ capacityBytes: 2 * GiB, nodeExpansionRequired: true });
    const reply = await node.NodeExpandVolume({ volumeId: vol.volumeId, volumePath: target, stagingTargetPath: staging, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: xfs });
    expect(reply.capacityBytes).toBe(2 * GiB);
    const bytes = (await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target })).usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(bytes.total).toBeGreaterThan(1.8 * GiB);
    expect(await readFile(join(target, 'before'), 'utf8')).toBe('one GiB');
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    await released(vol.volumeId);
    const file = join(agent.dir, 'share-qcow2', `volume-${uuidOf(vol.volumeId)}`);
    expect(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-f', 'qcow2', file], { encoding: 'utf8' }))['virtual-size']).toBe(2 * GiB);
    execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', file]);
  });

  it('grows a qcow2 volume expanded while unstaged, at its next stage', async () => {
    const vol = await volume('nfs-qcow2', xfs);
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: xfs };
    await node.NodeStageVolume(stage);
    await writeFile(join(staging, 'before'), 'one GiB');
    await node.NodeUnstageVolume(stage);
    const grown = await controller.ControllerExpandVolume({ volumeId: vol.volumeId, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: xfs });
    expect(grown.nodeExpansionRequired).toBe(true);
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    const reply = await node.NodeExpandVolume({ volumeId: vol.volumeId, volumePath: target, stagingTargetPath: staging, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: xfs });
    expect(reply.capacityBytes).toBe(2 * GiB);
    const bytes = (await node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target })).usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(bytes.total).toBeGreaterThan(1.8 * GiB);
    expect(await readFile(join(target, 'before'), 'utf8')).toBe('one GiB');
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    await released(vol.volumeId);
  });

  it('reports the volume abnormal once its daemon died, and unstages it all the same', async () => {
    const vol = await volume('nfs-qcow2');
    const { staging, target } = await paths();
    const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 };
    await node.NodeStageVolume(stage);
    await node.NodePublishVolume({ ...stage, targetPath: target });
    const stats = () => node.NodeGetVolumeStats({ volumeId: vol.volumeId, volumePath: target });
    expect((await stats()).volumeCondition).toEqual({ abnormal: false, message: '' });
    const [daemon] = daemonsWith(uuidOf(vol.volumeId));
    process.kill(daemon!, 'SIGKILL');
    // A signal is delivered, not awaited: the condition is asked once the daemon is gone.
    await vi.waitFor(() => expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([]), { timeout: 10_000 });
    const { volumeCondition } = await stats();
    expect(volumeCondition.abnormal).toBe(true);
    expect(volumeCondition.message).toContain('qemu-storage-daemon');
    await node.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
    await node.NodeUnstageVolume(stage);
    expect(isMountPoint(staging)).toBe(false);
    await released(vol.volumeId);
  });

  describe('a node plugin killed and started again', () => {
    const endpoint = () => `unix://${join(dir, 'bin.sock')}`;
    let bin: CsiBin | undefined;
    const startNode = async (env: Record<string, string> = {}): Promise<CsiServiceClient> => {
      bin = startBin(['--mode', 'node', '--endpoint', endpoint(), '--node-agent', agent.url, '--state-dir', stateDir], { KINDLING_TOKEN: TEST_TOKEN, ...env });
      await bin.listening;
      return csiClient('Node', endpoint());
    };
    const kill = async (): Promise<void> => {
      bin?.child.kill('SIGKILL');
      await bin?.exit;
    };
    afterAll(kill);

    it('stage after a kill mid-stage reuses the daemon it started; unstage after another kill stops it', async () => {
      const vol = await volume('nfs-qcow2');
      const { staging, target } = await paths();
      const stage = { volumeId: vol.volumeId, stagingTargetPath: staging, volumeCapability: ext4 };
      // Killed after the daemon and the loop device are up, before anything is mounted.
      let plugin = await startNode({ KINDLING_CSI_FAULT: 'stage:attached' });
      expect(await codeOf(plugin.NodeStageVolume(stage))).not.toBe('ok');
      expect(await bin!.exit).toBe(null);
      plugin.close();
      const [daemon] = daemonsWith(uuidOf(vol.volumeId));
      expect(daemon).toBeDefined();
      expect(isMountPoint(staging)).toBe(false);

      plugin = await startNode();
      await plugin.NodeStageVolume(stage);
      expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([daemon]);
      await plugin.NodePublishVolume({ ...stage, targetPath: target });
      await writeFile(join(target, 'kept'), 'through two kills');
      plugin.close();
      // Killed while the volume is published: the pod keeps its disk.
      await kill();
      expect(daemonsWith(uuidOf(vol.volumeId))).toEqual([daemon]);
      expect(await readFile(join(target, 'kept'), 'utf8')).toBe('through two kills');

      plugin = await startNode();
      await plugin.NodeUnpublishVolume({ volumeId: vol.volumeId, targetPath: target });
      await plugin.NodeUnstageVolume(stage);
      plugin.close();
      await kill();
      await released(vol.volumeId);
      // The qcow2 file is whole after all that: qemu's own check finds nothing.
      execFileSync('qemu-img', ['check', '-q', '-f', 'qcow2', join(agent.dir, 'share-qcow2', `volume-${uuidOf(vol.volumeId)}`)]);
    });
  });
});
