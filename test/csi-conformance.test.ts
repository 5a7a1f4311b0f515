import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '@kindling/sdk';
import { startCsiServer, type CsiServer } from '../packages/csi/src/index.js';
import { TOPOLOGY_KEY } from '../packages/csi/src/plugin.js';
import { codeOf, csiClient, status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The CSI specification's MUST rules for Identity and Controller, over gRPC on a unix socket, against
// two real agents (hosts host-a and host-b, each an NFS backend of raw files on a local folder).
const TOKEN = 'csi-conformance-token-0123456789';
const GiB = 1024 ** 3;
const mount = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };
const block = { block: {}, accessMode: { mode: 'SINGLE_NODE_WRITER' } };
const at = (host: string) => ({ segments: { [TOPOLOGY_KEY]: host } });

let agents: AgentProcess[];
let server: CsiServer;
let dir: string;
let identity: CsiServiceClient;
let controller: CsiServiceClient;
let names = 0;
const fresh = (what = 'pvc') => `${what}-${process.pid}-${++names}`;

const newVolume = async (extra: object = {}) =>
  (await controller.CreateVolume({ name: fresh(), volumeCapabilities: [mount], capacityRange: { requiredBytes: GiB }, ...extra })).volume;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-csi-'));
  agents = await Promise.all(
    ['host-a', 'host-b'].map((hostId) =>
      startAgentProcess({
        token: TOKEN,
        config: { hostId },
        backends: (d) => [{ name: 'nfs', driver: 'nfs', shares: [join(d, 'share')], format: 'raw' }],
      }),
    ),
  );
  server = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'csi.sock')}`, agents: agents.map((a) => a.url), token: TOKEN });
  identity = csiClient('Identity', server.address);
  controller = csiClient('Controller', server.address);
});

afterAll(async () => {
  identity?.close();
  controller?.close();
  await server?.close();
  await Promise.all((agents ?? []).map((a) => a.dispose()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Identity', () => {
  it('names the plugin and its version', async () => {
    const info = await identity.GetPluginInfo({});
    expect(info.name).toBe('csi.kindling.io');
    expect(info.vendorVersion).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('advertises the controller service, topology and online expansion', async () => {
    const { capabilities } = await identity.GetPluginCapabilities({});
    expect(capabilities.map((c: { service?: { type: string } }) => c.service?.type).filter(Boolean)).toEqual(['CONTROLLER_SERVICE', 'GROUP_CONTROLLER_SERVICE', 'VOLUME_ACCESSIBILITY_CONSTRAINTS']);
    expect(capabilities.find((c: { volumeExpansion?: unknown }) => c.volumeExpansion)?.volumeExpansion).toEqual({ type: 'ONLINE' });
  });

  it('is ready while its agents answer', async () => {
    expect(await identity.Probe({})).toEqual({ ready: { value: true } });
  });

  it('answers UNIMPLEMENTED for an RPC it does not serve', async () => {
    const node = csiClient('Node', server.address);
    expect(await codeOf(node.NodeGetInfo({}))).toBe(status.UNIMPLEMENTED);
    node.close();
  });
});

describe('CreateVolume', () => {
  it('lists the controller capabilities it implements', async () => {
    const { capabilities } = await controller.ControllerGetCapabilities({});
    expect(capabilities.map((c: { rpc: { type: string } }) => c.rpc.type).sort()).toEqual(
      [
        'CLONE_VOLUME',
        'CREATE_DELETE_SNAPSHOT',
        'CREATE_DELETE_VOLUME',
        'EXPAND_VOLUME',
        'GET_CAPACITY',
        'LIST_SNAPSHOTS',
        'LIST_VOLUMES',
        'GET_VOLUME',
        'VOLUME_CONDITION',
        'LIST_VOLUMES_PUBLISHED_NODES',
      ].sort(),
    );
  });

  it.each([
    ['no name', { volumeCapabilities: [mount] }],
    ['no capabilities', { name: 'x' }],
    ['a capability without access mode', { name: 'x', volumeCapabilities: [{ mount: {} }] }],
    ['a multi-node access mode', { name: 'x', volumeCapabilities: [{ ...mount, accessMode: { mode: 'MULTI_NODE_MULTI_WRITER' } }] }],
    ['an unsupported filesystem', { name: 'x', volumeCapabilities: [{ ...mount, mount: { fsType: 'btrfs' } }] }],
    ['an unknown parameter', { name: 'x', volumeCapabilities: [mount], parameters: { colour: 'red' } }],
    ['a topology without the host key', { name: 'x', volumeCapabilities: [mount], accessibilityRequirements: { requisite: [{ segments: { zone: 'z' } }] } }],
  ])('refuses %s with INVALID_ARGUMENT', async (_, request) => {
    expect(await codeOf(controller.CreateVolume(request))).toBe(status.INVALID_ARGUMENT);
  });

  it('rounds the capacity up to whole GiB', async () => {
    expect((await newVolume({ capacityRange: { requiredBytes: 1 } })).capacityBytes).toBe(GiB);
    expect((await newVolume({ capacityRange: { requiredBytes: 1.5 * GiB } })).capacityBytes).toBe(2 * GiB);
    expect((await newVolume({ capacityRange: { requiredBytes: 0, limitBytes: 0 } })).capacityBytes).toBe(GiB);
  });

  it('gives OUT_OF_RANGE when the limit is below the whole GiB needed', async () => {
    expect(await codeOf(controller.CreateVolume({ name: fresh(), volumeCapabilities: [mount], capacityRange: { requiredBytes: GiB + 1, limitBytes: GiB + 100 } }))).toBe(status.OUT_OF_RANGE);
    expect(await codeOf(controller.CreateVolume({ name: fresh(), volumeCapabilities: [mount], capacityRange: { limitBytes: 1000 } }))).toBe(status.OUT_OF_RANGE);
  });

  it('is idempotent by name; another size is ALREADY_EXISTS', async () => {
    const name = fresh();
    const request = { name, volumeCapabilities: [mount], capacityRange: { requiredBytes: GiB } };
    const first = (await controller.CreateVolume(request)).volume;
    const again = (await controller.CreateVolume(request)).volume;
    expect(again).toEqual(first);
    expect(await codeOf(controller.CreateVolume({ ...request, capacityRange: { requiredBytes: 3 * GiB } }))).toBe(status.ALREADY_EXISTS);
    const { entries } = await controller.ListVolumes({});
    expect(entries.filter((e: { volume: { volumeId: string } }) => e.volume.volumeId === first.volumeId)).toHaveLength(1);
  });

  it('makes one volume for one name under concurrent calls; the others are ABORTED or the same volume', async () => {
    const name = fresh();
    const request = { name, volumeCapabilities: [mount], capacityRange: { requiredBytes: GiB } };
    const outcomes = await Promise.allSettled([1, 2, 3].map(() => controller.CreateVolume(request)));
    const ids = new Set(outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.volume.volumeId] : [])));
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as { code: number }).code] : []));
    expect(ids.size).toBe(1);
    expect(refused.every((c) => c === status.ABORTED)).toBe(true);
    const after = (await controller.CreateVolume(request)).volume;
    expect(ids.has(after.volumeId)).toBe(true);
  });

  it('places by preferred, then requisite topology, and replies with the accessible topology', async () => {
    const preferred = await newVolume({ accessibilityRequirements: { requisite: [at('host-a'), at('host-b')], preferred: [at('host-b')] } });
    expect(preferred.accessibleTopology).toEqual([at('host-b')]);
    const requisite = await newVolume({ accessibilityRequirements: { requisite: [at('host-a')], preferred: [] } });
    expect(requisite.accessibleTopology).toEqual([at('host-a')]);
    expect(requisite.volumeId.startsWith('host-a:nfs:')).toBe(true);
  });

  it('gives RESOURCE_EXHAUSTED when no host in the topology has room', async () => {
    expect(await codeOf(newVolume({ capacityRange: { requiredBytes: 10_000 * GiB } , accessibilityRequirements: { requisite: [at('host-a')] } }))).toBe(status.RESOURCE_EXHAUSTED);
  });

  it('follows the backend parameter', async () => {
    const vol = await newVolume({ parameters: { backend: 'nfs', driver: 'nfs' } });
    expect(vol.volumeContext).toEqual({ backend: 'nfs', driver: 'nfs' });
    expect(await codeOf(newVolume({ parameters: { backend: 'nothing-here' } }))).toBe(status.RESOURCE_EXHAUSTED);
  });
});

describe('DeleteVolume and ValidateVolumeCapabilities', () => {
  it('DeleteVolume needs an id, and succeeds for an unknown or already deleted volume', async () => {
    expect(await codeOf(controller.DeleteVolume({}))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(controller.DeleteVolume({ volumeId: 'not-a-volume' }))).toBe('ok');
    expect(await codeOf(controller.DeleteVolume({ volumeId: 'host-a:nfs:00000000-0000-4000-8000-000000000000' }))).toBe('ok');
    expect(await codeOf(controller.DeleteVolume({ volumeId: 'no-such-host:nfs:00000000-0000-4000-8000-000000000000' }))).toBe('ok');
    const vol = await newVolume();
    await controller.DeleteVolume({ volumeId: vol.volumeId });
    await controller.DeleteVolume({ volumeId: vol.volumeId });
    expect(await codeOf(controller.ValidateVolumeCapabilities({ volumeId: vol.volumeId, volumeCapabilities: [mount] }))).toBe(status.NOT_FOUND);
  });

  it('ValidateVolumeCapabilities confirms single-node modes and not multi-node ones', async () => {
    const vol = await newVolume();
    expect(await codeOf(controller.ValidateVolumeCapabilities({ volumeCapabilities: [mount] }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(controller.ValidateVolumeCapabilities({ volumeId: vol.volumeId }))).toBe(status.INVALID_ARGUMENT);
    const ok = await controller.ValidateVolumeCapabilities({ volumeId: vol.volumeId, volumeCapabilities: [mount, block] });
    expect(ok.confirmed.volumeCapabilities).toHaveLength(2);
    const multi = await controller.ValidateVolumeCapabilities({ volumeId: vol.volumeId, volumeCapabilities: [{ ...mount, accessMode: { mode: 'MULTI_NODE_READER_ONLY' } }] });
    expect(multi.confirmed).toBeNull();
    expect(multi.message).toMatch(/MULTI_NODE_READER_ONLY/);
  });
});

describe('ListVolumes and GetCapacity', () => {
  it('pages through every volume with tokens, each once', async () => {
    await Promise.all([1, 2, 3].map(() => newVolume()));
    const all = (await controller.ListVolumes({})).entries.map((e: { volume: { volumeId: string } }) => e.volume.volumeId);
    expect(all.length).toBeGreaterThanOrEqual(3);
    const paged: string[] = [];
    let token = '';
    do {
      const reply = await controller.ListVolumes({ maxEntries: 2, startingToken: token });
      expect(reply.entries.length).toBeLessThanOrEqual(2);
      paged.push(...reply.entries.map((e: { volume: { volumeId: string } }) => e.volume.volumeId));
      token = reply.nextToken;
    } while (token);
    expect(paged).toEqual(all);
  });

  it('refuses a token it never gave with ABORTED and a negative max_entries with INVALID_ARGUMENT', async () => {
    expect(await codeOf(controller.ListVolumes({ startingToken: 'garbage' }))).toBe(status.ABORTED);
    expect(await codeOf(controller.ListVolumes({ maxEntries: -1 }))).toBe(status.INVALID_ARGUMENT);
  });

  it('answers capacity per topology segment', async () => {
    const a = await controller.GetCapacity({ volumeCapabilities: [mount], accessibleTopology: at('host-a') });
    expect(a.availableCapacity).toBeGreaterThan(0);
    expect(a.availableCapacity % GiB).toBe(0);
    expect(a.maximumVolumeSize.value).toBeLessThanOrEqual(a.availableCapacity);
    const all = await controller.GetCapacity({});
    expect(all.availableCapacity).toBeGreaterThanOrEqual(a.availableCapacity);
    expect((await controller.GetCapacity({ accessibleTopology: at('no-such-host') })).availableCapacity).toBe(0);
  });
});

describe('snapshots', () => {
  it('CreateSnapshot needs a name and a source, and the source must exist', async () => {
    const vol = await newVolume();
    expect(await codeOf(controller.CreateSnapshot({ sourceVolumeId: vol.volumeId }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(controller.CreateSnapshot({ name: fresh('snap') }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(controller.CreateSnapshot({ name: fresh('snap'), sourceVolumeId: 'host-a:nfs:00000000-0000-4000-8000-000000000000' }))).toBe(status.NOT_FOUND);
  });

  it('is idempotent by name, ready to use, and ALREADY_EXISTS for another source', async () => {
    const vol = await newVolume();
    const other = await newVolume();
    const name = fresh('snap');
    const { snapshot } = await controller.CreateSnapshot({ name, sourceVolumeId: vol.volumeId });
    expect(snapshot).toMatchObject({ sizeBytes: GiB, sourceVolumeId: vol.volumeId, readyToUse: true });
    expect(Number(snapshot.creationTime.seconds)).toBeGreaterThan(0);
    expect((await controller.CreateSnapshot({ name, sourceVolumeId: vol.volumeId })).snapshot).toEqual(snapshot);
    expect(await codeOf(controller.CreateSnapshot({ name, sourceVolumeId: other.volumeId }))).toBe(status.ALREADY_EXISTS);
  });

  it('ListSnapshots filters by snapshot id and by source volume, and pages', async () => {
    const vol = await newVolume();
    const s1 = (await controller.CreateSnapshot({ name: fresh('snap'), sourceVolumeId: vol.volumeId })).snapshot;
    const s2 = (await controller.CreateSnapshot({ name: fresh('snap'), sourceVolumeId: vol.volumeId })).snapshot;
    const ids = (r: Record<string, unknown>) => (r['entries'] as { snapshot: { snapshotId: string } }[]).map((e) => e.snapshot.snapshotId);
    expect(ids(await controller.ListSnapshots({ snapshotId: s1.snapshotId }))).toEqual([s1.snapshotId]);
    expect(ids(await controller.ListSnapshots({ sourceVolumeId: vol.volumeId })).sort()).toEqual([s1.snapshotId, s2.snapshotId].sort());
    expect(ids(await controller.ListSnapshots({ snapshotId: `${vol.volumeId}:00000000-0000-4000-8000-000000000000` }))).toEqual([]);
    expect(ids(await controller.ListSnapshots({ snapshotId: 'garbage' }))).toEqual([]);
    expect(ids(await controller.ListSnapshots({ sourceVolumeId: 'host-b:nfs:00000000-0000-4000-8000-000000000000' }))).toEqual([]);
    const first = await controller.ListSnapshots({ sourceVolumeId: vol.volumeId, maxEntries: 1 });
    expect(first.entries).toHaveLength(1);
    const second = await controller.ListSnapshots({ sourceVolumeId: vol.volumeId, maxEntries: 1, startingToken: first.nextToken });
    expect([...ids(first), ...ids(second)].sort()).toEqual([s1.snapshotId, s2.snapshotId].sort());
    expect(second.nextToken).toBe('');
    expect(await codeOf(controller.ListSnapshots({ startingToken: 'garbage' }))).toBe(status.ABORTED);
  });

  it('a volume with snapshots cannot be deleted (FAILED_PRECONDITION); DeleteSnapshot is idempotent', async () => {
    const vol = await newVolume();
    const { snapshot } = await controller.CreateSnapshot({ name: fresh('snap'), sourceVolumeId: vol.volumeId });
    expect(await codeOf(controller.DeleteVolume({ volumeId: vol.volumeId }))).toBe(status.FAILED_PRECONDITION);
    expect(await codeOf(controller.DeleteSnapshot({}))).toBe(status.INVALID_ARGUMENT);
    await controller.DeleteSnapshot({ snapshotId: snapshot.snapshotId });
    await controller.DeleteSnapshot({ snapshotId: snapshot.snapshotId });
    await controller.DeleteSnapshot({ snapshotId: 'garbage' });
    expect((await controller.ListSnapshots({ snapshotId: snapshot.snapshotId })).entries).toEqual([]);
    await controller.DeleteVolume({ volumeId: vol.volumeId });
  });

  it('restores from a snapshot and clones on the source host, or copies to the host a topology asks for', async () => {
    const vol = await newVolume({ accessibilityRequirements: { requisite: [at('host-b')] } });
    const { snapshot } = await controller.CreateSnapshot({ name: fresh('snap'), sourceVolumeId: vol.volumeId });
    const fromSnapshot = { snapshot: { snapshotId: snapshot.snapshotId } };
    const restored = await newVolume({ volumeContentSource: fromSnapshot });
    expect(restored.accessibleTopology).toEqual([at('host-b')]);
    expect(restored.contentSource.snapshot.snapshotId).toBe(snapshot.snapshotId);
    const clone = await newVolume({ volumeContentSource: { volume: { volumeId: vol.volumeId } }, capacityRange: { requiredBytes: 2 * GiB } });
    expect(clone).toMatchObject({ capacityBytes: 2 * GiB, accessibleTopology: [at('host-b')] });
    // A requisite topology without the source's host: copied there, agent to agent (issue 22).
    const elsewhere = await newVolume({ volumeContentSource: fromSnapshot, accessibilityRequirements: { requisite: [at('host-a')] } });
    expect(elsewhere).toMatchObject({ accessibleTopology: [at('host-a')], contentSource: fromSnapshot });
    expect(await codeOf(newVolume({ volumeContentSource: { snapshot: { snapshotId: `${vol.volumeId}:00000000-0000-4000-8000-000000000000` } } }))).toBe(status.NOT_FOUND);
    const listed = (await controller.ListVolumes({})).entries.find((e: { volume: { volumeId: string } }) => e.volume.volumeId === restored.volumeId);
    expect(listed.volume.contentSource.snapshot.snapshotId).toBe(snapshot.snapshotId);
    const name = fresh();
    await controller.CreateVolume({ name, volumeCapabilities: [mount], volumeContentSource: fromSnapshot });
    expect(await codeOf(controller.CreateVolume({ name, volumeCapabilities: [mount] }))).toBe(status.ALREADY_EXISTS);
  });
});

describe('ControllerGetVolume and volume health', () => {
  it('answers the volume as CreateVolume gave it, well and published nowhere; ListVolumes carries the same status', async () => {
    const vol = await newVolume({ accessibilityRequirements: { requisite: [at('host-a')] } });
    const got = await controller.ControllerGetVolume({ volumeId: vol.volumeId });
    expect(got.volume).toEqual(vol);
    const well = { publishedNodeIds: [], volumeCondition: { abnormal: false, message: '' } };
    expect(got.status).toEqual(well);
    const listed = (await controller.ListVolumes({})).entries.find((e: { volume: { volumeId: string } }) => e.volume.volumeId === vol.volumeId);
    expect(listed.status).toEqual(well);
    // Staged on its host (the node attaches through its own agent): published on that node.
    const sdk = await Agent.connect(agents[0]!.url, { token: TOKEN });
    try {
      const [held] = await (await sdk.backend('nfs')).volumesFiltered({ volumeId: vol.volumeId.split(':')[2]! });
      await held!.attach();
      expect((await controller.ControllerGetVolume({ volumeId: vol.volumeId })).status.publishedNodeIds).toEqual(['host-a']);
      await held!.detach();
    } finally {
      await sdk.close();
    }
  });

  it('needs an id; a volume its agent does not have is NOT_FOUND', async () => {
    expect(await codeOf(controller.ControllerGetVolume({}))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(controller.ControllerGetVolume({ volumeId: 'host-a:nfs:00000000-0000-4000-8000-000000000000' }))).toBe(status.NOT_FOUND);
    expect(await codeOf(controller.ControllerGetVolume({ volumeId: 'garbage' }))).toBe(status.NOT_FOUND);
  });
});

describe('ControllerExpandVolume', () => {
  it('needs an id and a capacity, and the volume must exist', async () => {
    expect(await codeOf(controller.ControllerExpandVolume({ capacityRange: { requiredBytes: GiB } }))).toBe(status.INVALID_ARGUMENT);
    const vol = await newVolume();
    expect(await codeOf(controller.ControllerExpandVolume({ volumeId: vol.volumeId }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(controller.ControllerExpandVolume({ volumeId: 'host-a:nfs:00000000-0000-4000-8000-000000000000', capacityRange: { requiredBytes: GiB } }))).toBe(status.NOT_FOUND);
  });

  it('grows to whole GiB, asks for node expansion for mount volumes only, and repeats idempotently', async () => {
    const vol = await newVolume();
    const grown = await controller.ControllerExpandVolume({ volumeId: vol.volumeId, capacityRange: { requiredBytes: 1.2 * GiB }, volumeCapability: mount });
    expect(grown).toEqual({ capacityBytes: 2 * GiB, nodeExpansionRequired: true });
    const again = await controller.ControllerExpandVolume({ volumeId: vol.volumeId, capacityRange: { requiredBytes: 2 * GiB }, volumeCapability: block });
    expect(again).toEqual({ capacityBytes: 2 * GiB, nodeExpansionRequired: false });
    expect(await codeOf(controller.ControllerExpandVolume({ volumeId: vol.volumeId, capacityRange: { requiredBytes: 3 * GiB, limitBytes: 2.5 * GiB } }))).toBe(status.OUT_OF_RANGE);
  });
});

// What the CSI spec's own sanity suite (csi-test's csi-sanity) checks beyond the rules above.
describe('as the spec’s sanity suite checks', () => {
  const longName = (what: string) => `${what}-${process.pid}-${++names}-`.padEnd(128, 'x');

  it('takes names of the maximum length (128 characters) for volumes and snapshots, idempotently', async () => {
    const name = longName('pvc');
    const { volume } = await controller.CreateVolume({ name, volumeCapabilities: [mount] });
    expect((await controller.CreateVolume({ name, volumeCapabilities: [mount] })).volume).toEqual(volume);
    const snapName = longName('snap');
    const { snapshot } = await controller.CreateSnapshot({ name: snapName, sourceVolumeId: volume.volumeId });
    expect((await controller.CreateSnapshot({ name: snapName, sourceVolumeId: volume.volumeId })).snapshot).toEqual(snapshot);
    await controller.DeleteSnapshot({ snapshotId: snapshot.snapshotId });
    await controller.DeleteVolume({ volumeId: volume.volumeId });
  });

  it('pages on when the last volume of a page is deleted and another is added between pages', async () => {
    await Promise.all([1, 2, 3].map(() => newVolume()));
    const ids = (r: Record<string, unknown>) => (r['entries'] as { volume: { volumeId: string } }[]).map((e) => e.volume.volumeId);
    const before = ids(await controller.ListVolumes({}));
    const first = await controller.ListVolumes({ maxEntries: 2 });
    expect(ids(first)).toEqual(before.slice(0, 2));
    const gone = ids(first)[1]!;
    await controller.DeleteVolume({ volumeId: gone });
    const added = await newVolume();
    const rest = ids(await controller.ListVolumes({ startingToken: first.nextToken }));
    expect(rest).not.toContain(gone);
    expect(rest).toEqual(expect.arrayContaining(before.slice(2)));
    const after = ids(await controller.ListVolumes({}));
    expect(after).toHaveLength(before.length);
    expect(after).toContain(added.volumeId);
  });

  it('answers a retried restore by its name even when the snapshot is gone by then', async () => {
    const vol = await newVolume();
    const { snapshot } = await controller.CreateSnapshot({ name: fresh('snap'), sourceVolumeId: vol.volumeId });
    const request = { name: fresh(), volumeCapabilities: [mount], volumeContentSource: { snapshot: { snapshotId: snapshot.snapshotId } } };
    const first = (await controller.CreateVolume(request)).volume;
    // The reply was lost, then the VolumeSnapshot was deleted before the provisioner retried.
    await controller.DeleteSnapshot({ snapshotId: snapshot.snapshotId });
    expect((await controller.CreateVolume(request)).volume.volumeId).toBe(first.volumeId);
    const clone = { name: fresh(), volumeCapabilities: [mount], volumeContentSource: { volume: { volumeId: vol.volumeId } } };
    const cloned = (await controller.CreateVolume(clone)).volume;
    await controller.DeleteVolume({ volumeId: vol.volumeId });
    expect((await controller.CreateVolume(clone)).volume.volumeId).toBe(cloned.volumeId);
    // Another source under the same name is still ALREADY_EXISTS.
    expect(await codeOf(controller.CreateVolume({ ...clone, volumeContentSource: request.volumeContentSource }))).toBe(status.ALREADY_EXISTS);
  });

  it('gives NOT_FOUND for a content source that does not exist', async () => {
    const missing = 'host-a:nfs:00000000-0000-4000-8000-000000000000';
    expect(await codeOf(newVolume({ volumeContentSource: { volume: { volumeId: missing } } }))).toBe(status.NOT_FOUND);
    expect(await codeOf(newVolume({ volumeContentSource: { snapshot: { snapshotId: `${missing}:00000000-0000-4000-8000-000000000001` } } }))).toBe(status.NOT_FOUND);
  });
});
