import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCsiServer, type CsiServer } from '../packages/csi/src/index.js';
import { codeOf, csiClient, status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { cleanUpHost, hasCapability, nodeUnavailable } from '../packages/csi/src/testing/host.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// One PVC's life through the calls Kubernetes makes, in their order: external-provisioner
// (controller), kubelet (node), external-resizer, external-snapshotter, then provisioner again for
// a restore, on a controller Deployment and a node DaemonSet pod as separate plugins. The node
// plugin restarts in the middle and finds its state in the mount table and the agent's index.
const TOKEN = 'csi-pvc-life-token-0123456789abc';
const GiB = 1024 ** 3;
// ext4 grows online only with CAP_SYS_RESOURCE (resize2fs's ioctl): without it (a sandbox) the claim is xfs.
const fsType = hasCapability(24) ? 'ext4' : 'xfs';
const claimed = { mount: { fsType, mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };

let agent: AgentProcess;
let dir: string;
let controllerPlugin: CsiServer;
let nodePlugin: CsiServer;
let provisioner: CsiServiceClient;
let kubelet: CsiServiceClient;

const startNodePlugin = async () => {
  nodePlugin = await startCsiServer({ mode: 'node', endpoint: `unix://${join(dir, 'node.sock')}`, agents: [agent.url], token: TOKEN });
  kubelet = csiClient('Node', nodePlugin.address);
};

describe.skipIf(nodeUnavailable())('a PVC from claim to restore, through the CSI calls Kubernetes makes', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-csi-pvc-'));
    agent = await startAgentProcess({ token: TOKEN, config: { hostId: 'worker-1' }, backends: (d) => [{ name: 'files', driver: 'nfs', shares: [join(d, 'share')], format: 'raw' }] });
    controllerPlugin = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'controller.sock')}`, agents: [agent.url], token: TOKEN });
    provisioner = csiClient('Controller', controllerPlugin.address);
    await startNodePlugin();
  });

  afterAll(async () => {
    provisioner?.close();
    kubelet?.close();
    await controllerPlugin?.close();
    await nodePlugin?.close();
    if (dir) cleanUpHost(dir, agent ? [agent.dir] : []);
    await agent?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('provisions, mounts, grows, snapshots and restores with the data intact', async () => {
    // The scheduler picked the node; the provisioner asks with its topology (WaitForFirstConsumer).
    const { nodeId, accessibleTopology } = await kubelet.NodeGetInfo({});
    expect(nodeId).toBe('worker-1');
    const capacity = await provisioner.GetCapacity({ volumeCapabilities: [claimed], parameters: { backend: 'files' }, accessibleTopology });
    expect(capacity.availableCapacity).toBeGreaterThan(GiB);
    const claim = {
      name: 'pvc-3f1c2a9e-life',
      capacityRange: { requiredBytes: GiB },
      volumeCapabilities: [claimed],
      parameters: { backend: 'files', 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'default' },
      accessibilityRequirements: { requisite: [accessibleTopology], preferred: [accessibleTopology] },
    };
    const { volume } = await provisioner.CreateVolume(claim);
    // The provisioner retries after a timeout: same answer, no second volume.
    expect((await provisioner.CreateVolume(claim)).volume).toEqual(volume);
    expect(volume.accessibleTopology).toEqual([accessibleTopology]);

    // kubelet: stage on the node, then publish into the pod.
    const staging = join(dir, 'plugins/kubernetes.io/csi/pv/staging/globalmount');
    const podPath = join(dir, 'pods/pod-1/volumes/kubernetes.io~csi/pvc/mount');
    await mkdir(join(dir, 'pods/pod-1/volumes/kubernetes.io~csi/pvc'), { recursive: true });
    const stage = { volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: claimed, volumeContext: volume.volumeContext };
    const publish = { ...stage, targetPath: podPath };
    await kubelet.NodeStageVolume(stage);
    await kubelet.NodePublishVolume(publish);
    await writeFile(join(podPath, 'db.txt'), 'row 1\n');

    // The node plugin restarts (DaemonSet rollout): it keeps no state, so it finds the same mounts.
    await nodePlugin.close();
    kubelet.close();
    await startNodePlugin();
    await kubelet.NodeStageVolume(stage);
    await kubelet.NodePublishVolume(publish);
    expect(await readFile(join(podPath, 'db.txt'), 'utf8')).toBe('row 1\n');

    // external-resizer, then kubelet's node expansion on the mounted volume.
    const resized = await provisioner.ControllerExpandVolume({ volumeId: volume.volumeId, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: claimed });
    expect(resized).toEqual({ capacityBytes: 2 * GiB, nodeExpansionRequired: true });
    await kubelet.NodeExpandVolume({ volumeId: volume.volumeId, volumePath: podPath, stagingTargetPath: staging, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: claimed });
    const bytes = (await kubelet.NodeGetVolumeStats({ volumeId: volume.volumeId, volumePath: podPath })).usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(bytes.total).toBeGreaterThan(1.8 * GiB);
    await writeFile(join(podPath, 'db.txt'), 'row 1\nrow 2\n');

    // The pod goes: kubelet unpublishes and unstages; the stats of a path no longer there are NOT_FOUND.
    await kubelet.NodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: podPath });
    expect(existsSync(podPath)).toBe(false);
    expect(await codeOf(kubelet.NodeGetVolumeStats({ volumeId: volume.volumeId, volumePath: podPath }))).toBe(status.NOT_FOUND);
    await kubelet.NodeUnstageVolume(stage);

    // A new pod on the same node: the data is still there.
    await kubelet.NodeStageVolume(stage);
    await kubelet.NodePublishVolume(publish);
    expect(await readFile(join(podPath, 'db.txt'), 'utf8')).toBe('row 1\nrow 2\n');
    await kubelet.NodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: podPath });
    await kubelet.NodeUnstageVolume(stage);

    // external-snapshotter: a VolumeSnapshot of the claim (file volumes are snapshotted detached).
    const snapRequest = { name: 'snapshot-7d0e-life', sourceVolumeId: volume.volumeId, parameters: {} };
    const { snapshot } = await provisioner.CreateSnapshot(snapRequest);
    expect(snapshot.readyToUse).toBe(true);
    expect((await provisioner.CreateSnapshot(snapRequest)).snapshot).toEqual(snapshot);
    expect((await provisioner.ListSnapshots({ snapshotId: snapshot.snapshotId })).entries).toHaveLength(1);

    // A PVC with dataSource: the snapshot. It lands on the snapshot's host, with the data.
    const { volume: restored } = await provisioner.CreateVolume({
      name: 'pvc-restored-life',
      capacityRange: { requiredBytes: 2 * GiB },
      volumeCapabilities: [claimed],
      parameters: { backend: 'files' },
      volumeContentSource: { snapshot: { snapshotId: snapshot.snapshotId } },
      accessibilityRequirements: { requisite: [accessibleTopology], preferred: [accessibleTopology] },
    });
    expect(restored.contentSource.snapshot.snapshotId).toBe(snapshot.snapshotId);
    const restoredStage = { volumeId: restored.volumeId, stagingTargetPath: join(dir, 'staging-restored'), volumeCapability: claimed };
    const restoredPod = join(dir, 'pods/pod-2-mount');
    await kubelet.NodeStageVolume(restoredStage);
    await kubelet.NodePublishVolume({ ...restoredStage, targetPath: restoredPod, readonly: true });
    expect(await readFile(join(restoredPod, 'db.txt'), 'utf8')).toBe('row 1\nrow 2\n');
    await kubelet.NodeUnpublishVolume({ volumeId: restored.volumeId, targetPath: restoredPod });
    await kubelet.NodeUnstageVolume(restoredStage);

    // Reclaim policy Delete: the restored claim, the snapshot, then the original claim.
    await provisioner.DeleteVolume({ volumeId: restored.volumeId });
    expect(await codeOf(provisioner.DeleteVolume({ volumeId: volume.volumeId }))).toBe(status.FAILED_PRECONDITION);
    await provisioner.DeleteSnapshot({ snapshotId: snapshot.snapshotId });
    await provisioner.DeleteVolume({ volumeId: volume.volumeId });
    await provisioner.DeleteVolume({ volumeId: volume.volumeId });
    expect((await provisioner.ListVolumes({})).entries).toEqual([]);
  });
});
