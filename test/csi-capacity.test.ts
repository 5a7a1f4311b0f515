import { statfs } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoopVg, loopVgUnavailable, requires, type LoopVg } from '@kindling/agent/testing';
import { startCsiServer, type CsiServer } from '../packages/csi/src/index.js';
import { codeOf, csiClient, status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// GetCapacity tells the scheduler what the agent will accept: the reserve is never counted as room,
// and an NFS backend's room is the largest volume one share takes, not the sum of its shares.
const TOKEN = 'csi-capacity-token-0123456789abc';
const GiB = 1024 ** 3;
const mount = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };

let vg: LoopVg;
let agent: AgentProcess;
let server: CsiServer;
let dir: string;
let controller: CsiServiceClient;

requires('the CSI capacity tests (a loop VG)', loopVgUnavailable(), describe, describe.skip)('GetCapacity by the one capacity rule', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-csi-capacity-'));
    vg = await createLoopVg({ sizeMiB: 4096 });
    agent = await startAgentProcess({
      token: TOKEN,
      backends: (d) => [
        { name: 'lvm', driver: 'lvm', volumeGroup: vg.vg, lvmType: 'default', lvmConfFile: vg.lvmConfFile, volumeClear: 'none', reservedPercentage: 25 },
        { name: 'nfs', driver: 'nfs', shares: [join(d, 'share1'), join(d, 'share2')], format: 'raw', sparse: false },
      ],
    });
    server = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'csi.sock')}`, agents: [agent.url], token: TOKEN });
    controller = csiClient('Controller', server.address);
  });

  afterAll(async () => {
    controller?.close();
    await server?.close();
    await agent?.dispose();
    await vg?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
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
