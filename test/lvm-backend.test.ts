import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type Backend } from '@kindling/sdk';
import { BackendError, ConflictError, UnsupportedError } from '@kindling/protocol';
import { createLoopVg, loopVgUnavailable, requires, type LoopVg } from '@kindling/agent/testing';
import { TEST_TOKEN, startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Real lvm2 on a loop-backed VG. This kernel has no device-mapper, so the VG runs with activation
// disabled: linear create/extend/delete and reports are real here; snapshot and clone are refused up
// front (UNSUPPORTED), thin, attach and dd must fail cleanly and leave the index true (the real-kernel lane runs them for real).
const suite = requires('the lvm-backend scenarios (a loop VG)', loopVgUnavailable(), describe, describe.skip);

const GiB = 1024 ** 3;
let vg: LoopVg;
let proc: AgentProcess;
let agent: Agent;
let lvm: Backend;
let thin: Backend;

interface LvRow {
  lv_name: string;
  lv_size: string;
  lv_tags: string;
}
async function lvs(): Promise<LvRow[]> {
  const { stdout } = await vg.lvm(['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size,lv_tags', vg.vg]);
  return (JSON.parse(stdout) as { report: { lv: LvRow[] }[] }).report[0]!.lv;
}
async function vgs(): Promise<{ vg_size: string; vg_free: string }> {
  const { stdout } = await vg.lvm(['vgs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'vg_size,vg_free', vg.vg]);
  return (JSON.parse(stdout) as { report: { vg: { vg_size: string; vg_free: string }[] }[] }).report[0]!.vg[0]!;
}

suite('LVM backend through the agent, on real lvm2', () => {
  beforeAll(async () => {
    vg = await createLoopVg({ sizeMiB: 8192 });
    proc = await startAgentProcess({
      backends: () => [
        // No device nodes without device-mapper, so nothing to zero on delete (the real-kernel lane does).
        { name: 'lvm', driver: 'lvm', volumeGroup: vg.vg, lvmType: 'default', lvmConfFile: vg.lvmConfFile, volumeClear: 'none' },
        { name: 'lvm-thin', driver: 'lvm', volumeGroup: vg.vg, lvmType: 'thin', lvmConfFile: vg.lvmConfFile },
        // The example config's setting, which this host cannot honour.
        { name: 'lvm-zero', driver: 'lvm', volumeGroup: vg.vg, lvmConfFile: vg.lvmConfFile, volumeClear: 'zero' },
      ],
    });
    agent = await Agent.connect(proc.url);
    lvm = await agent.backend('lvm');
    thin = await agent.backend('lvm-thin');
  });
  afterAll(async () => {
    await agent?.close();
    await proc?.dispose();
    await vg?.destroy();
  });

  it('creates a volume that lvs shows with its size and Kindling tags, extends it, deletes it', async () => {
    const vol = await lvm.createVolume({ size: 1, name: 'db-1' });
    expect(vol.status).toBe('available');
    let lv = (await lvs()).find((l) => l.lv_name === `volume-${vol.id}`);
    expect(lv).toBeDefined();
    expect(Number(lv!.lv_size)).toBe(1 * GiB);
    expect(lv!.lv_tags).toContain(`kindling_id_${vol.id}`);

    await vol.extend(2);
    expect(vol.size).toBe(2);
    lv = (await lvs()).find((l) => l.lv_name === `volume-${vol.id}`);
    expect(Number(lv!.lv_size)).toBe(2 * GiB);

    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect((await lvs()).some((l) => l.lv_name === `volume-${vol.id}`)).toBe(false);
    expect(await lvm.volumesFiltered({ volumeId: vol.id })).toEqual([]);
  });

  it('reports stats that match vgs', async () => {
    const vol = await lvm.createVolume({ size: 2 });
    const stats = await lvm.stats({ refresh: true });
    const real = await vgs();
    expect(stats.totalCapacityGb).toBeCloseTo(Number(real.vg_size) / GiB, 2);
    expect(stats.freeCapacityGb).toBeCloseTo(Number(real.vg_free) / GiB, 2);
    expect(stats.driver).toBe('lvm');
    expect(stats.totalVolumes).toBeGreaterThanOrEqual(1);
    await vol.delete();
  });

  it('readyz sees the VG and metrics carry its metadata-area gauges', async () => {
    const ready = await fetch(`http://127.0.0.1:${proc.port}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${proc.port}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text();
    expect(metrics).toMatch(/^kindling_backend_vg_mda_free_bytes\{backend="lvm"\} \d+$/m);
    expect(metrics).toMatch(/^kindling_backend_warnings\{backend="lvm"\} 0$/m);
  });

  it('refuses a volume larger than the free space before lvcreate runs', async () => {
    const before = await lvs();
    const err = await lvm.createVolume({ size: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as ConflictError).details).toMatchObject({ requestedGb: 100 });
    expect(await lvs()).toEqual(before);
    // Refused before anything was made: no error record is left behind either.
    expect((await lvm.volumes()).map((v) => v.status)).not.toContain('error');
  });

  it('refuses to extend past the free space and keeps the volume as it was', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    await expect(vol.extend(100)).rejects.toBeInstanceOf(ConflictError);
    await vol.refresh();
    expect(vol.size).toBe(1);
    expect(vol.status).toBe('available');
    const lv = (await lvs()).find((l) => l.lv_name === `volume-${vol.id}`);
    expect(Number(lv!.lv_size)).toBe(1 * GiB);
    await vol.delete();
  });

  it('refuses snapshots and clones up front without device-mapper: UNSUPPORTED with the feature, no record left in error', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    expect(await lvm.capabilities()).toMatchObject({ snapshot: false, clone: false, createFromSnapshot: false, revertToSnapshot: false, extend: true });
    const snap = await vol.createSnapshot().catch((e: unknown) => e);
    expect(snap).toBeInstanceOf(UnsupportedError);
    expect(snap).toMatchObject({ message: expect.stringMatching(/no device-mapper/), details: { backend: 'lvm', feature: 'snapshot' } });
    const clone = await vol.clone().catch((e: unknown) => e);
    expect(clone).toMatchObject({ code: 'UNSUPPORTED', details: { feature: 'clone' } });
    await vol.refresh();
    expect(vol.status).toBe('available');
    expect(vol.snapshots.size).toBe(0);
    await vol.delete();
    expect((await lvs()).length).toBe(0);
  });

  it('attach fails cleanly without device-mapper and leaves the volume available', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    await expect(vol.attach()).rejects.toBeInstanceOf(BackendError);
    await vol.refresh();
    expect(vol.status).toBe('available');
    expect(vol.connections).toEqual([]);
    await vol.delete();
  });

  it('a thin volume fails cleanly (no thin pool without device-mapper) and is kept in error', async () => {
    const err = await thin.createVolume({ size: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    const listed = await thin.volumes();
    expect(listed.map((v) => v.status)).toEqual(['error']);
    await listed[0]!.delete();
    expect(await thin.volumes()).toEqual([]);
  });

  it('a delete that must zero without device-mapper fails saying to set volumeClear: none', async () => {
    const vol = await (await agent.backend('lvm-zero')).createVolume({ size: 1 });
    const err = await vol.delete().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(/no device-mapper on this host: .*set volumeClear: none/);
    // The LV the failed delete left, removed by hand as an operator would after changing the setting.
    await vg.lvm(['lvremove', '-f', `${vg.vg}/volume-${vol.id}`]).catch(() => vg.lvm(['lvremove', '-f', `${vg.vg}/clear-volume-${vol.id}`]));
  });
});
