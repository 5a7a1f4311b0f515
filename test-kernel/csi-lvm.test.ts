// kindling-csi on a real kernel, LVM thick and thin: one PVC's life (packages/csi/src/testing/pvc-life.ts) with
// the controller plugin on the host and the node plugin in the guest, next to the agent it mounts for. Real mkfs
// (ext4 on thick, xfs on thin), mounts, binds, a read-only publish and an online grow of the mounted filesystem,
// with data written through the mount read back after a node plugin restart, after unstage and re-stage, and
// from a volume restored from a snapshot.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it, onTestFinished } from 'vitest';
import { startCsiServer, type CsiServer } from '../packages/csi/dist/index.js';
import { csiClient, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { pvcLife } from '../packages/csi/src/testing/pvc-life.js';
import { cleanUpGuestRoot, deleteClaims, guestFiles, startGuestNodePlugin, type GuestNodePlugin } from './support/csi.js';
import { kernelEnv } from './support/kernel.js';

const env = kernelEnv();
// A 2 GiB thick copy for the restore, mkfs and growth in an emulated guest: minutes on a loaded machine.
const SLOW = 600_000;
const CASES = [
  { backend: 'lvm-thick', fsType: 'ext4' },
  { backend: 'lvm-thin', fsType: 'xfs' },
] as const;

describe('kindling-csi on LVM (real kernel): a PVC from claim to restore, node plugin in the guest', () => {
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
});
