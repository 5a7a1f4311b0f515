// kindling-csi on a real kernel, LVM thick and thin and NFS (the guest's own export, qcow2 files through
// qemu-storage-daemon): one PVC's life (packages/csi/src/testing/pvc-life.ts) with the controller plugin on the
// host and the node plugin in the guest, next to the agent it mounts for. Real mkfs (ext4 on thick and NFS, xfs
// on thin), mounts, binds, a read-only publish and an online grow of the mounted filesystem, a snapshot of the
// mounted claim while the node plugin is replaced, with data written through the mount read back after a node
// plugin restart, after unstage and re-stage, and from a volume restored from the snapshot (exactly what was
// written before it).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startCsiServer, type CsiServer } from '../packages/csi/dist/index.js';
import { csiClient, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { pvcLife } from '../packages/csi/src/testing/pvc-life.js';
import { cleanUpGuestRoot, deleteClaims, guestFiles, startGuestNodePlugin, type GuestNodePlugin } from './support/csi.js';
import { stall } from './support/crash.js';
import { guestSh, kernelEnv } from './support/kernel.js';

const env = kernelEnv();
// A 2 GiB thick copy for the restore, mkfs and growth in an emulated guest: minutes on a loaded machine.
const SLOW = 600_000;
const CASES = [
  { backend: 'lvm-thick', fsType: 'ext4' },
  { backend: 'lvm-thin', fsType: 'xfs' },
  // qcow2 files on the guest's own NFS export, served by qemu-storage-daemon (FUSE) and snapshotted live.
  { backend: 'nfs', fsType: 'ext4' },
] as const;

describe('kindling-csi on LVM and NFS (real kernel): a PVC from claim to restore, node plugin in the guest', () => {
  let dir: string;
  let controllerPlugin: CsiServer;
  let provisioner: CsiServiceClient;
  let nodePlugin: GuestNodePlugin;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-csi-lane-'));
    controllerPlugin = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'controller.sock')}`, agents: [env.url], token: env.token });
    provisioner = csiClient('Controller', controllerPlugin.address);
    nodePlugin = await startGuestNodePlugin();
  });

  afterAll(async () => {
    provisioner?.close();
    await nodePlugin?.stop();
    await controllerPlugin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const { backend, fsType } of CASES) {
    it(`${backend}, ${fsType}: provisions, mounts, grows, snapshots and restores with the data intact`, async () => {
      const unique = `${backend}-${process.pid}`;
      const root = `/var/lib/kubelet-lane-${unique}`;
      // After a failure midway: the mounts and folders, then the claims pvcLife did not get to delete.
      onTestFinished(async () => {
        await cleanUpGuestRoot(root);
        await deleteClaims(backend, unique);
      });
      await pvcLife({
        provisioner,
        kubelet: () => nodePlugin.kubelet(),
        restartNodePlugin: () => nodePlugin.restart(),
        backend,
        fsType,
        root,
        unique,
        files: guestFiles,
      });
    }, SLOW);
  }

  it('lvm-thin: a node plugin killed in the middle of a stage (its mkfs stalled) stages the PVC once restarted', async () => {
    const unique = `killed-stage-${process.pid}`;
    const root = `/var/lib/kubelet-lane-${unique}`;
    onTestFinished(async () => {
      await cleanUpGuestRoot(root);
      await deleteClaims('lvm-thin', unique);
    });
    const cap = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };
    const { accessibleTopology } = await nodePlugin.kubelet().NodeGetInfo({});
    const { volume } = await provisioner.CreateVolume({
      name: `pvc-${unique}`,
      capacityRange: { requiredBytes: 1024 ** 3 },
      volumeCapabilities: [cap],
      parameters: { backend: 'lvm-thin' },
      accessibilityRequirements: { requisite: [accessibleTopology], preferred: [accessibleTopology] },
    });
    const staging = `${root}/plugins/kubernetes.io/csi/pv/${unique}/globalmount`;
    const podDir = `${root}/pods/${unique}/volumes/kubernetes.io~csi/pvc`;
    await guestFiles.mkdir(podDir);
    const stage = { volumeId: volume.volumeId, stagingTargetPath: staging, volumeCapability: cap, volumeContext: volume.volumeContext };
    const publish = { ...stage, targetPath: `${podDir}/mount` };

    const stalled = await stall(unique, 'mkfs.ext4', 'before', '.');
    const first = nodePlugin.kubelet().NodeStageVolume(stage).then(
      () => 'staged',
      () => 'failed',
    );
    await stalled();
    // A DaemonSet pod replaced while kubelet waits on its stage: the mkfs dies with it.
    await nodePlugin.restart();
    expect(await first).toBe('failed');

    // kubelet retries the stage on the new plugin: the filesystem is made once, mounted once.
    await nodePlugin.kubelet().NodeStageVolume(stage);
    expect(await guestFiles.fsType(staging)).toBe('ext4');
    await nodePlugin.kubelet().NodePublishVolume(publish);
    await guestFiles.write(`${publish.targetPath}/db.txt`, 'row 1\n');
    expect(await guestFiles.read(`${staging}/db.txt`)).toBe('row 1\n');
    expect(await guestSh(`findmnt -rn -o TARGET | grep -c '^${staging}$' || true`)).toBe('1\n');

    await nodePlugin.kubelet().NodeUnpublishVolume({ volumeId: volume.volumeId, targetPath: publish.targetPath });
    await nodePlugin.kubelet().NodeUnstageVolume(stage);
    await provisioner.DeleteVolume({ volumeId: volume.volumeId });
  }, SLOW);
});
