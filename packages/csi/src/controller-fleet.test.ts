import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, UnavailableError } from '@kindling/sdk';
import { StandInAgent } from '@kindling/sdk/testing';
import { Controller } from './controller.js';
import { volumeHandle } from './ids.js';
import { NameRecords } from './names.js';
import { TOPOLOGY_KEY } from './plugin.js';
import type { CreateVolumeRequest } from './types.js';

// The controller over a fleet of stand-in agents (real WebSocket endpoints), counting what each agent
// is asked: one CSI call must touch the agents it needs, not the whole fleet.
const AGENTS = 24;
let hosts: StandInAgent[];
let fleet: Fleet;
let controller: Controller;

const mount = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' as const } };
const at = (host: string) => ({ segments: { [TOPOLOGY_KEY]: host } });
const request = (name: string, over: Partial<CreateVolumeRequest> = {}): CreateVolumeRequest => ({
  name,
  capacityRange: { requiredBytes: 2 ** 30, limitBytes: 0 },
  volumeCapabilities: [mount],
  parameters: {},
  volumeContentSource: null,
  accessibilityRequirements: null,
  ...over,
});

/** The ops each agent received while `fn` ran, by host id (hosts asked nothing are left out). */
async function asked<T>(fn: () => Promise<T>): Promise<{ result: T; ops: Map<string, string[]> }> {
  const marks = hosts.map((h) => h.requests.length);
  const result = await fn();
  const ops = new Map<string, string[]>();
  hosts.forEach((h, i) => {
    const got = h.requests.slice(marks[i]).map((r) => (r.op === 'volume.list' && r.args.name === undefined && r.args.id === undefined ? 'volume.list(all)' : r.op));
    if (got.length) ops.set(h.hostId, got);
  });
  return { result, ops };
}

beforeAll(async () => {
  hosts = await Promise.all(
    Array.from({ length: AGENTS }, (_, i) => StandInAgent.start({ hostId: `host-${String(i).padStart(2, '0')}`, backends: [{ name: 'nfs', driver: 'nfs' }, { name: 'lvm', driver: 'lvm' }] })),
  );
  fleet = await Fleet.connect(hosts.map((h) => h.url), { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
  controller = new Controller(fleet);
  // Placement has every agent's capacity before the counting starts.
  await fleet.stats();
});

afterAll(async () => {
  await fleet?.close();
  await Promise.all((hosts ?? []).map((h) => h.stop()));
});

describe('the controller over a fleet', () => {
  it('CreateVolume (with a backend parameter, a topology, or neither) places from the pushed capacity: no agent is asked for stats or for a listing', async () => {
    const cases: Partial<CreateVolumeRequest>[] = [{}, { parameters: { backend: 'lvm' } }, { accessibilityRequirements: { requisite: [at('host-03'), at('host-07')], preferred: [at('host-07')] } }];
    for (const [i, over] of cases.entries()) {
      const { result, ops } = await asked(() => controller.createVolume(request(`pvc-where-${i}`, over)));
      expect([...ops.values()].flat().filter((op) => op === 'backend.stats')).toEqual([]);
      expect([...ops.values()].flat()).not.toContain('volume.list(all)');
      if (over.parameters) expect(result.volume.volumeContext.backend).toBe('lvm');
      if (over.accessibilityRequirements) expect(result.volume.accessibleTopology).toEqual([at('host-07')]);
    }
  });

  it('CreateVolume without a topology asks two agents at most (the name\'s home, which keeps name → volume, and the one it lands on), and so does its retry', async () => {
    const hostsOf = (ops: Map<string, string[]>) => [...ops.keys()];
    const { result: first, ops } = await asked(() => controller.createVolume(request('pvc-bounded')));
    expect(hostsOf(ops).length).toBeLessThanOrEqual(2);
    expect([...ops.values()].flat().filter((op) => op === 'volume.list')).toEqual([]);
    const { result: again, ops: retry } = await asked(() => controller.createVolume(request('pvc-bounded')));
    expect(again).toEqual(first);
    expect(hostsOf(retry).length).toBeLessThanOrEqual(2);
    await expect(controller.createVolume(request('pvc-bounded', { capacityRange: { requiredBytes: 3 * 2 ** 30, limitBytes: 0 } }))).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    // Deleted, the name is free again: a new volume, still without asking the fleet.
    await controller.deleteVolume({ volumeId: first.volume.volumeId });
    const { result: remade, ops: after } = await asked(() => controller.createVolume(request('pvc-bounded')));
    expect(remade.volume.volumeId).not.toBe(first.volume.volumeId);
    expect(hostsOf(after).length).toBeLessThanOrEqual(2);
  });

  it('a record left pending (the create answered, its record not completed) is settled by the retry: the same volume, no second one', async () => {
    const name = 'pvc-pending';
    const home = hosts.find((h) => h.url === new NameRecords(fleet).home(name).url)!;
    const kvSet = home.handle('kv.set', (a) => {
      if (String(a.value).includes('"ref"')) throw new UnavailableError('the home went away before the record was completed');
      home.kv.set(String(a.key), String(a.value));
      return { ok: true };
    });
    let first;
    try {
      first = await controller.createVolume(request(name));
    } finally {
      home.handle('kv.set', kvSet!);
    }
    const again = await controller.createVolume(request(name));
    expect(again).toEqual(first);
    // Settled: the next retry reads the record again instead of asking the fleet.
    const { ops } = await asked(() => controller.createVolume(request(name)));
    expect([...ops.keys()].length).toBeLessThanOrEqual(2);
  });

  it('the name\'s home down: a create placed anywhere is UNAVAILABLE, one pinned to a host that is up goes on', async () => {
    const name = 'pvc-home-down';
    const home = hosts.find((h) => h.url === new NameRecords(fleet).home(name).url)!;
    const other = hosts.find((h) => h !== home)!;
    await home.stop();
    try {
      await expect.poll(() => fleet.agents.find((a) => a.url === home.url)!.state, { timeout: 5000 }).toBe('down');
      await expect(controller.createVolume(request(name))).rejects.toMatchObject({ code: status.UNAVAILABLE });
      const pinned = await controller.createVolume(request(name, { accessibilityRequirements: { requisite: [at(other.hostId)], preferred: [] } }));
      expect(pinned.volume.accessibleTopology).toEqual([at(other.hostId)]);
    } finally {
      await home.listen();
      await expect.poll(() => fleet.agents.find((a) => a.url === home.url)!.state, { timeout: 5000 }).toBe('up');
    }
  });

  it('GetCapacity, with a topology or without, answers from the capacity the agents pushed: no agent is asked for stats', async () => {
    const { result: all, ops } = await asked(() => controller.getCapacity({ volumeCapabilities: [mount], parameters: {}, accessibleTopology: null }));
    expect([...ops.values()].flat()).toEqual([]);
    // 24 agents of two 100 GiB backends each, less what the tests before placed.
    expect(all.availableCapacity).toBeGreaterThan(24 * 2 * 90 * 2 ** 30);
    expect(all.maximumVolumeSize.value).toBe(100 * 2 ** 30);
    const { result: one, ops: oneOps } = await asked(() => controller.getCapacity({ volumeCapabilities: [mount], parameters: { backend: 'nfs' }, accessibleTopology: at('host-11') }));
    expect([...oneOps.values()].flat()).toEqual([]);
    expect(one.availableCapacity).toBe(100 * 2 ** 30);
  });

  it('CreateSnapshot finds its source through the host its id names: no other agent gets a listing', async () => {
    const source = hosts[5]!.newVolume({ backend: 'nfs', size: 1 });
    const sourceId = volumeHandle({ hostId: 'host-05', backend: 'nfs', volumeId: source.id });
    const { result, ops } = await asked(() => controller.createSnapshot({ name: 'snap-one', sourceVolumeId: sourceId, parameters: {} }));
    expect(result.snapshot.sourceVolumeId).toBe(sourceId);
    expect([...ops.values()].flat()).not.toContain('volume.list(all)');
    for (const [host, got] of ops) if (host !== 'host-05') expect({ host, got: got.filter((op) => op === 'volume.list') }).toEqual({ host, got: [] });
    // Idempotent by name, and the name taken for another source is ALREADY_EXISTS (another host's volume too).
    expect((await controller.createSnapshot({ name: 'snap-one', sourceVolumeId: sourceId, parameters: {} })).snapshot).toEqual(result.snapshot);
    const other = hosts[9]!.newVolume({ backend: 'nfs', size: 1 });
    const otherId = volumeHandle({ hostId: 'host-09', backend: 'nfs', volumeId: other.id });
    await expect(controller.createSnapshot({ name: 'snap-one', sourceVolumeId: otherId, parameters: {} })).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
  });

  it('ListVolumes and ListSnapshots page over the agents\' cursors: max_entries honoured, each entry once, and a page asks only the agents it reaches', async () => {
    for (const host of hosts) {
      host.volumes.clear();
      host.snapshots.clear();
    }
    for (const host of hosts.slice(0, 6)) {
      for (let i = 0; i < 3; i++) host.newSnapshot(host.newVolume({ backend: 'nfs', size: 1 }), { name: `s-${host.hostId}-${i}` });
      host.newVolume({ backend: 'lvm', size: 1 });
    }
    const volumeIds = (r: { entries: { volume: { volumeId: string } }[] }) => r.entries.map((e) => e.volume.volumeId);
    const all = volumeIds(await controller.listVolumes({ maxEntries: 0, startingToken: '' }));
    expect(all).toHaveLength(24);
    const { result: first, ops } = await asked(() => controller.listVolumes({ maxEntries: 5, startingToken: '' }));
    expect(volumeIds(first)).toEqual(all.slice(0, 5));
    // Five volumes live on the first two hosts: the rest of the fleet is not asked.
    expect([...ops.keys()].sort()).toEqual(['host-00', 'host-01']);
    const paged = [...volumeIds(first)];
    for (let token = first.nextToken; token; ) {
      const reply = await controller.listVolumes({ maxEntries: 5, startingToken: token });
      expect(reply.entries.length).toBeLessThanOrEqual(5);
      paged.push(...volumeIds(reply));
      token = reply.nextToken;
    }
    expect(paged).toEqual(all);

    const snapshotIds = (r: { entries: { snapshot: { snapshotId: string } }[] }) => r.entries.map((e) => e.snapshot.snapshotId);
    const snaps = snapshotIds(await controller.listSnapshots({ maxEntries: 0, startingToken: '', snapshotId: '', sourceVolumeId: '' }));
    expect(snaps).toHaveLength(18);
    const snapPaged: string[] = [];
    let token = '';
    do {
      const reply = await controller.listSnapshots({ maxEntries: 4, startingToken: token, snapshotId: '', sourceVolumeId: '' });
      expect(reply.entries.length).toBeLessThanOrEqual(4);
      snapPaged.push(...snapshotIds(reply));
      token = reply.nextToken;
    } while (token);
    expect(snapPaged.sort()).toEqual([...snaps].sort());
  });
});
