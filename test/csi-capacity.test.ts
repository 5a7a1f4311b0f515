import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopVgUnavailable, requires } from '@kindling/agent/testing';
import { codeOf, status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import type { AgentProcess } from './support/agent-process.js';
import { startLvmController } from './support/lvm-controller.js';

// GetCapacity tells the scheduler what the agent will accept: the reserve is never counted as room,
// and an NFS backend's room is the largest volume one share takes, not the sum of its shares.
const TOKEN = 'csi-capacity-token-0123456789abc';
const GiB = 1024 ** 3;
const mount = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };

let agent: AgentProcess;
let controller: CsiServiceClient;
let dispose: (() => Promise<void>) | undefined;

requires('the CSI capacity tests (a loop VG)', loopVgUnavailable(), describe, describe.skip)('GetCapacity by the one capacity rule', () => {
  beforeAll(async () => {
    ({ agent, controller, dispose } = await startLvmController({
      name: 'csi-capacity',
      token: TOKEN,
      sizeMiB: 4096,
      backends: (vg, d) => [
        { name: 'lvm', driver: 'lvm', volumeGroup: vg.vg, lvmType: 'default', lvmConfFile: vg.lvmConfFile, volumeClear: 'none', reservedPercentage: 25 },
        { name: 'nfs', driver: 'nfs', shares: [join(d, 'share1'), join(d, 'share2')], format: 'raw', sparse: false },
      ],
    }));
  });

  afterAll(async () => {
    await dispose?.();
  });

  it('counts no part of the reserve: what it reports is created, and nothing once it reports none', async () => {
    const lvm = { parameters: { backend: 'lvm' } };
    const { availableCapacity, maximumVolumeSize } = await controller.GetCapacity(lvm);
    expect(availableCapacity).toBeGreaterThan(0);
    expect(maximumVolumeSize.value).toBe(availableCapacity);
    const { volume } = await controller.CreateVolume({ name: 'pvc-capacity-1', capacityRange: { requiredBytes: availableCapacity }, volumeCapabilities: [mount], ...lvm });
    expect(volume.capacityBytes).toBe(availableCapacity);
    expect((await controller.GetCapacity(lvm)).availableCapacity).toBe(0);
    expect(await codeOf(controller.CreateVolume({ name: 'pvc-capacity-2', capacityRange: { requiredBytes: GiB }, volumeCapabilities: [mount], ...lvm }))).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("reports an NFS backend's room as the largest volume one share takes", async () => {
    const { availableCapacity, maximumVolumeSize } = await controller.GetCapacity({ parameters: { backend: 'nfs' } });
    const fs = await statfs(join(agent.dir, 'share1'));
    expect(maximumVolumeSize.value).toBeGreaterThan(0);
    // Both shares are folders of one filesystem: a volume fits in its free space once, not twice.
    expect(maximumVolumeSize.value).toBeLessThanOrEqual(fs.bavail * fs.bsize);
    expect(availableCapacity).toBe(maximumVolumeSize.value);
  });
});
