import { expect } from 'vitest';
import { codeOf, status, type CsiServiceClient } from './client.js';

const GiB = 1024 ** 3;

/** File access on the node, where the mounts are: the local fs here, the guest's in the kernel lane. */
export interface NodeFiles {
  mkdir(path: string): Promise<void>;
  write(path: string, text: string): Promise<void>;
  read(path: string): Promise<string>;
  exists(path: string): Promise<boolean>;
  /** The type of the filesystem mounted at `path`, as the node's mount table shows it. */
  fsType(path: string): Promise<string>;
}

export interface PvcLifeOptions {
  /** The controller plugin, as external-provisioner, -resizer and -snapshotter reach it. */
  provisioner: CsiServiceClient;
  /** The node plugin, as kubelet reaches it (a new client after each restart). */
  kubelet(): CsiServiceClient;
  /** Stops the node plugin and starts it again (a DaemonSet rollout). */
  restartNodePlugin(): Promise<void>;
  /** The StorageClass's `backend` parameter. */
  backend: string;
  fsType: 'ext4' | 'xfs';
  /** A folder on the node for kubelet's staging and pod paths; `unique` names this run's claims. */
  root: string;
  unique: string;
  files: NodeFiles;
}

/**
 * One PVC's life through the calls Kubernetes makes, in their order: external-provisioner (controller),
 * kubelet (node), external-resizer, external-snapshotter, then the provisioner again for a restore.
 * Checked on the node: the filesystem staging made, the pod path as a bind of it, the filesystem's
 * online growth (NodeGetVolumeStats), a read-only publish refusing writes. The node plugin restarts in
 * the middle and must find its state in the mount table and the agent's index, and again while a
 * snapshot of the mounted volume is taken. Data written through the mount is read back after the
 * restart, after unstage and re-stage, and from the restore, which holds exactly what was written
 * before the snapshot.
 */
export async function pvcLife(o: PvcLifeOptions): Promise<void> {
  const { provisioner, files } = o;
  const cap = { mount: { fsType: o.fsType, mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };
  // The scheduler picked the node; the provisioner asks with its topology (WaitForFirstConsumer).
  const { accessibleTopology } = await o.kubelet().NodeGetInfo({});
  const capacity = await provisioner.GetCapacity({ volumeCapabilities: [cap], parameters: { backend: o.backend }, accessibleTopology });
  expect(capacity.availableCapacity).toBeGreaterThan(GiB);
  const topology = { requisite: [accessibleTopology], preferred: [accessibleTopology] };
  const claim = {
    name: `pvc-${o.unique}`,
    capacityRange: { requiredBytes: GiB },
    volumeCapabilities: [cap],
    parameters: { backend: o.backend, 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'default' },
    accessibilityRequirements: topology,
  };
  const { volume } = await provisioner.CreateVolume(claim);
  // The provisioner retries after a timeout: same answer, no second volume.
  expect((await provisioner.CreateVolume(claim)).volume).toEqual(volume);
  expect(volume.accessibleTopology).toEqual([accessibleTopology]);

  // kubelet: stage on the node, then publish into the pod (kubelet makes the pod's volume folder).
  const staging = `${o.root}/plugins/kubernetes.io/csi/pv/${o.unique}/globalmount`;
  const podDir = `${o.root}/pods/${o.unique}-1/volumes/kubernetes.io~csi/pvc`;
  const podPath = `${podDir}/mount`;
  await files.mkdir(podDir);
  const stage = { volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: cap, volumeContext: volume.volumeContext };
  const publish = { ...stage, targetPath: podPath };
  await o.kubelet().NodeStageVolume(stage);
  // A blank volume: staging made the filesystem asked for.
  expect(await files.fsType(staging)).toBe(o.fsType);
  await o.kubelet().NodePublishVolume(publish);
  await files.write(`${podPath}/db.txt`, 'row 1\n');
  // The pod's path is a bind of the staged filesystem, not a second mount of the device.
  expect(await files.read(`${staging}/db.txt`)).toBe('row 1\n');

  // The node plugin restarts: it keeps no state, so it finds the same mounts and answers as before.
  await o.restartNodePlugin();
  await o.kubelet().NodeStageVolume(stage);
  await o.kubelet().NodePublishVolume(publish);
  expect(await files.read(`${podPath}/db.txt`)).toBe('row 1\n');

  // external-resizer, then kubelet's node expansion on the mounted volume: the filesystem grows online.
  const bytes = async () =>
    ((await o.kubelet().NodeGetVolumeStats({ volumeId: volume.volumeId, volumePath: podPath })).usage as { unit: string; total: number }[]).find((u) => u.unit === 'BYTES')!.total;
  expect(await bytes()).toBeLessThanOrEqual(GiB);
  const resized = await provisioner.ControllerExpandVolume({ volumeId: volume.volumeId, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: cap });
  expect(resized).toEqual({ capacityBytes: 2 * GiB, nodeExpansionRequired: true });
  await o.kubelet().NodeExpandVolume({ volumeId: volume.volumeId, volumePath: podPath, stagingTargetPath: staging, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: cap });
  expect(await bytes()).toBeGreaterThan(1.8 * GiB);
  await files.write(`${podPath}/db.txt`, 'row 1\nrow 2\n');

  // The pod goes: kubelet unpublishes (the target goes too) and unstages.
  await o.kubelet().NodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: podPath });
  expect(await files.exists(podPath)).toBe(false);
  expect(await codeOf(o.kubelet().NodeGetVolumeStats({ volumeId: volume.volumeId, volumePath: podPath }))).toBe(status.NOT_FOUND);
  await o.kubelet().NodeUnstageVolume(stage);

  // A new pod on the same node: the data is still there.
  await o.kubelet().NodeStageVolume(stage);
  await o.kubelet().NodePublishVolume(publish);
  expect(await files.read(`${podPath}/db.txt`)).toBe('row 1\nrow 2\n');

  // external-snapshotter: a VolumeSnapshot of the claim while its pod runs (the mounted filesystem is
  // frozen for the cut: the snapshot is clean), with the node plugin replaced meanwhile (a rollout).
  const snapRequest = { name: `snapshot-${o.unique}`, sourceVolumeId: volume.volumeId, parameters: {} };
  const [{ snapshot }] = await Promise.all([provisioner.CreateSnapshot(snapRequest), o.restartNodePlugin()]);
  expect(snapshot.readyToUse).toBe(true);
  expect((await provisioner.CreateSnapshot(snapRequest)).snapshot).toEqual(snapshot);
  expect((await provisioner.ListSnapshots({ snapshotId: snapshot.snapshotId })).entries).toHaveLength(1);
  // kubelet goes on with the new plugin; the pod writes after the cut, which the snapshot must not hold.
  await o.kubelet().NodeStageVolume(stage);
  await o.kubelet().NodePublishVolume(publish);
  await files.write(`${podPath}/db.txt`, 'row 1\nrow 2\nrow 3\n');
  await o.kubelet().NodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: podPath });
  await o.kubelet().NodeUnstageVolume(stage);

  // A PVC with dataSource: the snapshot. It lands on the snapshot's host, with the data; read-only pod.
  const { volume: restored } = await provisioner.CreateVolume({
    name: `pvc-${o.unique}-restored`,
    capacityRange: { requiredBytes: 2 * GiB },
    volumeCapabilities: [cap],
    parameters: { backend: o.backend },
    volumeContentSource: { snapshot: { snapshotId: snapshot.snapshotId } },
    accessibilityRequirements: topology,
  });
  expect(restored.contentSource.snapshot.snapshotId).toBe(snapshot.snapshotId);
  const restoredStage = { volumeId: restored.volumeId, stagingTargetPath: `${staging}-restored`, volumeCapability: cap };
  const restoredDir = `${o.root}/pods/${o.unique}-2/volumes/kubernetes.io~csi/pvc`;
  await files.mkdir(restoredDir);
  await o.kubelet().NodeStageVolume(restoredStage);
  await o.kubelet().NodePublishVolume({ ...restoredStage, targetPath: `${restoredDir}/mount`, readonly: true });
  expect(await files.read(`${restoredDir}/mount/db.txt`)).toBe('row 1\nrow 2\n');
  await expect(files.write(`${restoredDir}/mount/db.txt`, 'row 3\n')).rejects.toThrow(/read-only/i);
  await o.kubelet().NodeUnpublishVolume({ volumeId: restored.volumeId, targetPath: `${restoredDir}/mount` });
  await o.kubelet().NodeUnstageVolume(restoredStage);

  // The claim itself, staged again: what the pod wrote after the cut.
  await o.kubelet().NodeStageVolume(stage);
  expect(await files.read(`${staging}/db.txt`)).toBe('row 1\nrow 2\nrow 3\n');
  await o.kubelet().NodeUnstageVolume(stage);

  // Reclaim policy Delete: the restored claim, then the original one, refused while its snapshot lives.
  await provisioner.DeleteVolume({ volumeId: restored.volumeId });
  expect(await codeOf(provisioner.DeleteVolume({ volumeId: volume.volumeId }))).toBe(status.FAILED_PRECONDITION);
  await provisioner.DeleteSnapshot({ snapshotId: snapshot.snapshotId });
  await provisioner.DeleteVolume({ volumeId: volume.volumeId });
  await provisioner.DeleteVolume({ volumeId: volume.volumeId });
  const left = ((await provisioner.ListVolumes({})).entries as { volume: { volumeId: string } }[]).map((e) => e.volume.volumeId);
  expect(left).not.toContain(volume.volumeId);
  expect(left).not.toContain(restored.volumeId);
}
