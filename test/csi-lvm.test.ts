import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopVgUnavailable, requires, type LoopVg } from '@kindling/agent/testing';
import { status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { startLvmController } from './support/lvm-controller.js';

// The controller on real lvm2: a loop VG without device-mapper, so activation is off. Linear
// create, extend, delete and capacity are real here; a snapshot is refused up front (the agent sees
// no device-mapper). Thin pools, snapshots and the node service on LVM run in the lane.
const TOKEN = 'csi-lvm-token-0123456789abcdef';
const GiB = 1024 ** 3;
const mount = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };

let vg: LoopVg;
let controller: CsiServiceClient;
let dispose: (() => Promise<void>) | undefined;

async function lvSizes(): Promise<Map<string, number>> {
  const { stdout } = await vg.lvm(['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size', vg.vg]);
  const rows = (JSON.parse(stdout) as { report: { lv: { lv_name: string; lv_size: string }[] }[] }).report[0]!.lv;
  return new Map(rows.map((r) => [r.lv_name, Number(r.lv_size)]));
}

requires('the CSI controller on LVM (a loop VG)', loopVgUnavailable(), describe, describe.skip)('Controller on an LVM backend (loop VG, no activation)', () => {
  beforeAll(async () => {
    ({ vg, controller, dispose } = await startLvmController({
      name: 'csi-lvm',
      token: TOKEN,
      sizeMiB: 8192,
      config: { hostId: 'lvm-host' },
      backends: (vg) => [{ name: 'lvm', driver: 'lvm', volumeGroup: vg.vg, lvmType: 'default', lvmConfFile: vg.lvmConfFile, volumeClear: 'none' }],
    }));
  });

  afterAll(async () => {
    await dispose?.();
  });

  it('creates, grows and deletes logical volumes, and answers capacity from the VG', async () => {
    const before = await controller.GetCapacity({ parameters: { backend: 'lvm' } });
    expect(before.availableCapacity).toBeGreaterThanOrEqual(6 * GiB);
    const { volume } = await controller.CreateVolume({ name: 'pvc-lvm-1', capacityRange: { requiredBytes: 1.5 * GiB }, volumeCapabilities: [mount], parameters: { backend: 'lvm', driver: 'lvm' } });
    expect(volume).toMatchObject({ capacityBytes: 2 * GiB, volumeContext: { backend: 'lvm', driver: 'lvm' } });
    const lv = `volume-${volume.volumeId.split(':')[2]}`;
    expect((await lvSizes()).get(lv)).toBe(2 * GiB);
    const after = await controller.GetCapacity({ parameters: { backend: 'lvm' } });
    expect(after.availableCapacity).toBe(before.availableCapacity - 2 * GiB);
    await controller.ControllerExpandVolume({ volumeId: volume.volumeId, capacityRange: { requiredBytes: 3 * GiB } });
    expect((await lvSizes()).get(lv)).toBe(3 * GiB);
    await controller.DeleteVolume({ volumeId: volume.volumeId });
    expect((await lvSizes()).has(lv)).toBe(false);
  });

  it('a snapshot on a host without device-mapper is refused up front (INVALID_ARGUMENT, UNSUPPORTED), leaving no snapshot', async () => {
    const { volume } = await controller.CreateVolume({ name: 'pvc-lvm-2', volumeCapabilities: [mount], parameters: { backend: 'lvm' } });
    const request = { name: 'snap-lvm-2', sourceVolumeId: volume.volumeId };
    const failure = await controller.CreateSnapshot(request).catch((err: { code: number; details: string }) => err);
    expect(failure).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((failure as { details: string }).details).toMatch(/^UNSUPPORTED: .*no device-mapper/);
    expect((await controller.ListSnapshots({ sourceVolumeId: volume.volumeId })).entries).toEqual([]);
  });
});
