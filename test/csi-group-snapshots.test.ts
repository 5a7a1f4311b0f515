import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCsiServer, type CsiServer } from '../packages/csi/src/index.js';
import { TOPOLOGY_KEY } from '../packages/csi/src/plugin.js';
import { codeOf, csiClient, status, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The CSI GroupController (issue 21 item 3) over gRPC on a unix socket, against two real agents
// (hosts host-a and host-b, each an NFS backend on a local folder).
const TOKEN = 'csi-group-token-0123456789abcdef';
const GiB = 1024 ** 3;
const mount = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };
const at = (host: string) => ({ segments: { [TOPOLOGY_KEY]: host } });

let agents: AgentProcess[];
let server: CsiServer;
let dir: string;
let identity: CsiServiceClient;
let controller: CsiServiceClient;
let groups: CsiServiceClient;
let names = 0;
const fresh = (what = 'pvc') => `${what}-${process.pid}-${++names}`;

const volumeOn = async (host: string): Promise<string> =>
  (
    await controller.CreateVolume({
      name: fresh(),
      volumeCapabilities: [mount],
      capacityRange: { requiredBytes: GiB },
      accessibilityRequirements: { requisite: [at(host)] },
    })
  ).volume.volumeId;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-csi-group-'));
  agents = await Promise.all(
    ['host-a', 'host-b'].map((hostId) =>
      startAgentProcess({ token: TOKEN, config: { hostId }, backends: (d) => [{ name: 'nfs', driver: 'nfs', shares: [join(d, 'share')] }] }),
    ),
  );
  server = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'csi.sock')}`, agents: agents.map((a) => a.url), token: TOKEN });
  identity = csiClient('Identity', server.address);
  controller = csiClient('Controller', server.address);
  groups = csiClient('GroupController', server.address);
});

afterAll(async () => {
  for (const client of [identity, controller, groups]) client?.close();
  await server?.close();
  await Promise.all((agents ?? []).map((a) => a.dispose()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('GroupController', () => {
  it('is advertised, with its one capability', async () => {
    const services = (await identity.GetPluginCapabilities({})).capabilities.map((c: { service?: { type: string } }) => c.service?.type);
    expect(services).toContain('GROUP_CONTROLLER_SERVICE');
    expect((await groups.GroupControllerGetCapabilities({})).capabilities).toEqual([{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' }, type: 'rpc' }]);
  });

  it('cuts a group of one host, answers a retry with the same group, gets it, restores each member, and deletes it', async () => {
    const sources = [await volumeOn('host-a'), await volumeOn('host-a')];
    const name = fresh('group');
    const { groupSnapshot } = await groups.CreateVolumeGroupSnapshot({ name, sourceVolumeIds: sources });
    expect(groupSnapshot.readyToUse).toBe(true);
    expect(groupSnapshot.snapshots.map((s: { sourceVolumeId: string }) => s.sourceVolumeId)).toEqual(sources);
    for (const s of groupSnapshot.snapshots) expect(s).toMatchObject({ readyToUse: true, groupSnapshotId: groupSnapshot.groupSnapshotId, sizeBytes: GiB });

    const again = await groups.CreateVolumeGroupSnapshot({ name, sourceVolumeIds: sources });
    expect(again.groupSnapshot.groupSnapshotId).toBe(groupSnapshot.groupSnapshotId);
    expect(await codeOf(groups.CreateVolumeGroupSnapshot({ name, sourceVolumeIds: [sources[0]] }))).toBe(status.ALREADY_EXISTS);

    const got = await groups.GetVolumeGroupSnapshot({ groupSnapshotId: groupSnapshot.groupSnapshotId });
    expect(got.groupSnapshot).toEqual(groupSnapshot);

    for (const member of groupSnapshot.snapshots) {
      const restored = await controller.CreateVolume({
        name: fresh('restore'),
        volumeCapabilities: [mount],
        capacityRange: { requiredBytes: GiB },
        volumeContentSource: { snapshot: { snapshotId: member.snapshotId } },
      });
      expect(restored.volume.contentSource.snapshot.snapshotId).toBe(member.snapshotId);
      expect(restored.volume.accessibleTopology).toEqual([at('host-a')]);
    }

    const memberIds = groupSnapshot.snapshots.map((s: { snapshotId: string }) => s.snapshotId);
    expect(await codeOf(groups.DeleteVolumeGroupSnapshot({ groupSnapshotId: groupSnapshot.groupSnapshotId, snapshotIds: [memberIds[0]] }))).toBe(
      status.INVALID_ARGUMENT,
    );
    await groups.DeleteVolumeGroupSnapshot({ groupSnapshotId: groupSnapshot.groupSnapshotId, snapshotIds: memberIds });
    expect(await codeOf(groups.GetVolumeGroupSnapshot({ groupSnapshotId: groupSnapshot.groupSnapshotId }))).toBe(status.NOT_FOUND);
    expect((await controller.ListSnapshots({ snapshotId: memberIds[0] })).entries).toEqual([]);
    // Deleting what is gone, or was never this driver's, succeeds.
    await groups.DeleteVolumeGroupSnapshot({ groupSnapshotId: groupSnapshot.groupSnapshotId });
    await groups.DeleteVolumeGroupSnapshot({ groupSnapshotId: 'garbage' });
  });

  it('refuses volumes of several hosts, a missing name or source, and an unknown volume', async () => {
    const both = [await volumeOn('host-a'), await volumeOn('host-b')];
    expect(await codeOf(groups.CreateVolumeGroupSnapshot({ name: fresh('group'), sourceVolumeIds: both }))).toBe(status.INVALID_ARGUMENT);
    expect((await controller.ListSnapshots({ sourceVolumeId: both[0] })).entries).toEqual([]);
    expect(await codeOf(groups.CreateVolumeGroupSnapshot({ sourceVolumeIds: [both[0]] }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(groups.CreateVolumeGroupSnapshot({ name: fresh('group') }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(groups.CreateVolumeGroupSnapshot({ name: fresh('group'), sourceVolumeIds: ['garbage'] }))).toBe(status.NOT_FOUND);
    expect(await codeOf(groups.GetVolumeGroupSnapshot({}))).toBe(status.INVALID_ARGUMENT);
  });
});
