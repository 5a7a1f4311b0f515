import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, type Volume } from '@kindling/sdk';
import { readsPattern, writePattern } from '@kindling/agent/testing';
import { Controller } from '../packages/csi/src/controller.js';
import { parseVolumeHandle, volumeHandle } from '../packages/csi/src/ids.js';
import { TOPOLOGY_KEY } from '../packages/csi/src/plugin.js';
import type { CreateVolumeRequest, VolumeContentSource } from '../packages/csi/src/types.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Issue 22 in Kubernetes: a CreateVolume whose content source (a snapshot or a volume) lives on another
// host than its topology allows is copied to the chosen node's host, agent to agent, through the
// controller over two real agents with NFS backends. A retry of the same request finds that copy.

const mount = { mount: { fsType: 'ext4', mountFlags: [] }, accessMode: { mode: 'SINGLE_NODE_WRITER' as const } };
const at = (host: string) => ({ segments: { [TOPOLOGY_KEY]: host } });

describe('CSI restore onto another host', () => {
  let a: AgentProcess;
  let b: AgentProcess;
  let fleet: Fleet;
  let controller: Controller;
  let source: Volume;
  let sourceHandle: string;

  beforeAll(async () => {
    [a, b] = await Promise.all([startAgentProcess(), startAgentProcess()]);
    fleet = await Fleet.connect([a.url, b.url]);
    controller = new Controller(fleet);
    const { backends } = await fleet.backends();
    source = await backends.find((x) => x.agent.hostId === a.hostId)!.createVolume({ size: 1 });
    await writePattern(join(a.dir, 'share'), source.toDict(), 0x4e);
    sourceHandle = volumeHandle({ hostId: a.hostId, backend: source.backend.name, volumeId: source.id });
  });
  afterAll(async () => {
    await fleet?.close();
    await Promise.all([a?.dispose(), b?.dispose()]);
  });

  const onHostB = (name: string, contentSource: VolumeContentSource): CreateVolumeRequest => ({
    name,
    capacityRange: { requiredBytes: 2 ** 30, limitBytes: 0 },
    volumeCapabilities: [mount],
    parameters: {},
    volumeContentSource: contentSource,
    accessibilityRequirements: { requisite: [at(b.hostId)], preferred: [at(b.hostId)] },
  });

  /** The agent volume a CSI volume id names on host B, with the source's data or not. */
  const holdsSourceData = async (volumeId: string): Promise<boolean> => {
    const ref = parseVolumeHandle(volumeId)!;
    expect(ref.hostId).toBe(b.hostId);
    const { backends } = await fleet.backends();
    const [vol] = await backends.find((x) => x.agent.hostId === b.hostId && x.name === ref.backend)!.volumesFiltered({ volumeId: ref.volumeId });
    expect(vol?.status).toBe('available');
    return readsPattern(join(b.dir, 'share'), vol!.toDict(), 0x4e);
  };

  it('restores a snapshot of host A onto host B, and a retry answers with the same volume', async () => {
    const { snapshot } = await controller.createSnapshot({ name: 'snap-to-move', sourceVolumeId: sourceHandle, parameters: {} });
    const request = onHostB('pvc-moved-from-snapshot', { snapshot: { snapshotId: snapshot.snapshotId } });
    const { volume } = await controller.createVolume(request);
    expect(volume.accessibleTopology).toEqual([at(b.hostId)]);
    expect(volume.contentSource).toEqual({ snapshot: { snapshotId: snapshot.snapshotId } });
    expect(await holdsSourceData(volume.volumeId)).toBe(true);
    expect((await controller.createVolume(request)).volume.volumeId).toBe(volume.volumeId);
  });

  it('clones a volume of host A onto host B', async () => {
    const { volume } = await controller.createVolume(onHostB('pvc-moved-from-volume', { volume: { volumeId: sourceHandle } }));
    expect(volume.accessibleTopology).toEqual([at(b.hostId)]);
    expect(await holdsSourceData(volume.volumeId)).toBe(true);
  });
});
