import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '@kindling/sdk';
import { StandInAgent } from '@kindling/sdk/testing';
import { Controller } from './controller.js';
import { volumeHandle } from './ids.js';

// Volume health on the controller side, over stand-in agents (real WebSocket endpoints): what a
// health monitor reads from ListVolumes and ControllerGetVolume when a record, a pool or an agent is wrong.
let hosts: StandInAgent[];
let fleet: Fleet;
let controller: Controller;

const handleOf = (host: StandInAgent, id: string, backend = 'nfs') => volumeHandle({ hostId: host.hostId, backend, volumeId: id });
type Entry = { volume: { volumeId: string; capacityBytes: number }; status: { publishedNodeIds: string[]; volumeCondition: { abnormal: boolean; message: string } } };
const statusOf = (entries: Entry[], id: string) => entries.find((e) => e.volume.volumeId === id)?.status;

beforeAll(async () => {
  hosts = await Promise.all(
    ['health-a', 'health-b', 'health-c'].map((hostId) => StandInAgent.start({ hostId, backends: [{ name: 'nfs', driver: 'nfs' }, { name: 'thin', driver: 'lvm' }] })),
  );
  fleet = await Fleet.connect(hosts.map((h) => h.url), { reconnect: { initialDelayMs: 50, maxDelayMs: 100 } });
  controller = new Controller(fleet);
  await fleet.stats();
});

afterAll(async () => {
  await fleet?.close();
  await Promise.all((hosts ?? []).map((h) => h.stop()));
});

describe('controller volume health', () => {
  it('advertises GET_VOLUME, VOLUME_CONDITION and LIST_VOLUMES_PUBLISHED_NODES', () => {
    const types = controller.controllerGetCapabilities().capabilities.map((c) => c.rpc.type);
    expect(types).toEqual(expect.arrayContaining(['GET_VOLUME', 'VOLUME_CONDITION', 'LIST_VOLUMES_PUBLISHED_NODES']));
  });

  it('ListVolumes and ControllerGetVolume say which volume is in error, which is published on which node, and which is well', async () => {
    const [a] = hosts as [StandInAgent];
    const well = a.newVolume({ backend: 'nfs', size: 1 });
    const broken = a.newVolume({ backend: 'nfs', size: 1, status: 'error', error: { code: 'BACKEND_ERROR', message: 'qemu-img failed', details: {} } });
    const staged = a.newVolume({ backend: 'nfs', size: 2 });
    await (await fleet.agents[0]!.agent.backend('nfs')).volumesFiltered({ volumeId: staged.id }).then(([v]) => v!.attach());
    const { entries } = (await controller.listVolumes({ maxEntries: 0, startingToken: '' })) as { entries: Entry[] };
    expect(statusOf(entries, handleOf(a, well.id))).toEqual({ publishedNodeIds: [], volumeCondition: { abnormal: false, message: '' } });
    const error = statusOf(entries, handleOf(a, broken.id))!;
    expect(error.volumeCondition.abnormal).toBe(true);
    expect(error.volumeCondition.message).toContain('error');
    expect(error.volumeCondition.message).toContain('qemu-img failed');
    expect(statusOf(entries, handleOf(a, staged.id))).toEqual({ publishedNodeIds: ['health-a'], volumeCondition: { abnormal: false, message: '' } });

    const got = await controller.controllerGetVolume({ volumeId: handleOf(a, staged.id) });
    expect(got.volume.capacityBytes).toBe(2 * 2 ** 30);
    expect(got.status).toEqual({ publishedNodeIds: ['health-a'], volumeCondition: { abnormal: false, message: '' } });
    expect((await controller.controllerGetVolume({ volumeId: handleOf(a, broken.id) })).status.volumeCondition.abnormal).toBe(true);
  });

  it('ControllerGetVolume is NOT_FOUND only when the agent answers that the volume does not exist', async () => {
    const a = hosts[0]!;
    await expect(controller.controllerGetVolume({ volumeId: handleOf(a, '00000000-0000-4000-8000-000000000000') })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(controller.controllerGetVolume({ volumeId: 'not-a-handle' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(controller.controllerGetVolume({ volumeId: '' })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it('a thin pool above its threshold makes its volumes abnormal, from the capacity the agent pushed', async () => {
    const b = hosts[1]!;
    const pooled = b.newVolume({ backend: 'thin', size: 1 });
    const elsewhere = b.newVolume({ backend: 'nfs', size: 1 });
    b.push({ event: 'capacity', resource: { ...b.stats('thin'), thinProvisioningSupport: true, extra: { thinPoolDataPercent: 97.5, thinPoolMetadataPercent: 10 } } });
    await expect.poll(async () => (await controller.controllerGetVolume({ volumeId: handleOf(b, pooled.id, 'thin') })).status.volumeCondition.abnormal).toBe(true);
    const { status: pool } = await controller.controllerGetVolume({ volumeId: handleOf(b, pooled.id, 'thin') });
    expect(pool.volumeCondition.message).toMatch(/thin pool .*97\.5% .*threshold 90%/);
    expect((await controller.controllerGetVolume({ volumeId: handleOf(b, elsewhere.id) })).status.volumeCondition.abnormal).toBe(false);
  });

  it('an agent that is down: its volumes listed as last seen, abnormal "agent unreachable", and GetVolume answers the same instead of an error', async () => {
    const c = hosts[2]!;
    const held = c.newVolume({ backend: 'nfs', size: 3 });
    const before = (await controller.listVolumes({ maxEntries: 0, startingToken: '' })) as { entries: Entry[] };
    expect(statusOf(before.entries, handleOf(c, held.id))?.volumeCondition.abnormal).toBe(false);
    await c.stop();
    try {
      await expect.poll(() => fleet.agents[2]!.state).toBe('down');
      const { entries } = (await controller.listVolumes({ maxEntries: 0, startingToken: '' })) as { entries: Entry[] };
      const listed = entries.find((e) => e.volume.volumeId === handleOf(c, held.id))!;
      expect(listed.volume.capacityBytes).toBe(3 * 2 ** 30);
      expect(listed.status.volumeCondition).toEqual({ abnormal: true, message: expect.stringContaining('agent health-c unreachable') });
      // The other agents' volumes are listed as they are.
      expect(entries.filter((e) => e.volume.volumeId.startsWith('health-a:')).every((e) => !e.status.volumeCondition.message.includes('unreachable'))).toBe(true);
      // A controller that never read that agent's volumes to the end cannot tell them: no listing that would read as volumes gone.
      await expect(new Controller(fleet).listVolumes({ maxEntries: 0, startingToken: '' })).rejects.toMatchObject({ code: status.UNAVAILABLE });
      const got = await controller.controllerGetVolume({ volumeId: handleOf(c, held.id) });
      expect(got.status.volumeCondition).toEqual({ abnormal: true, message: expect.stringContaining('agent health-c unreachable') });
    } finally {
      await c.listen();
    }
  });
});
