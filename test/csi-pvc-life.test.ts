import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startCsiServer, type CsiServer } from '../packages/csi/src/index.js';
import { csiClient, type CsiServiceClient } from '../packages/csi/src/testing/client.js';
import { requires } from '@kindling/agent/testing';
import { cleanUpHost, hasCapability, nodeUnavailable } from '../packages/csi/src/testing/host.js';
import { mountAt } from '../packages/csi/src/mounts.js';
import { pvcLife } from '../packages/csi/src/testing/pvc-life.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// One PVC's life (packages/csi/src/testing/pvc-life.ts) on this host: a controller plugin and a node
// plugin as separate processes would be, one agent with raw file volumes, real loop devices and mounts.
const TOKEN = 'csi-pvc-life-token-0123456789abc';

let agent: AgentProcess;
let dir: string;
let controllerPlugin: CsiServer;
let nodePlugin: CsiServer;
let provisioner: CsiServiceClient;
let kubelet: CsiServiceClient;

const startNodePlugin = async () => {
  nodePlugin = await startCsiServer({ mode: 'node', endpoint: `unix://${join(dir, 'node.sock')}`, agents: [agent.url], token: TOKEN, stateDir: join(dir, 'state') });
  kubelet = csiClient('Node', nodePlugin.address);
};

requires('the PVC scenario (loop devices, mkfs, mount)', nodeUnavailable(), describe, describe.skip)('a PVC from claim to restore, through the CSI calls Kubernetes makes', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-csi-pvc-'));
    agent = await startAgentProcess({ token: TOKEN, config: { hostId: 'worker-1' }, backends: (d) => [{ name: 'files', driver: 'nfs', shares: [join(d, 'share')], format: 'raw' }] });
    controllerPlugin = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'controller.sock')}`, agents: [agent.url], token: TOKEN });
    provisioner = csiClient('Controller', controllerPlugin.address);
    await startNodePlugin();
  });

  afterAll(async () => {
    provisioner?.close();
    kubelet?.close();
    await controllerPlugin?.close();
    await nodePlugin?.close();
    if (dir) cleanUpHost(dir, [...(agent ? [agent.dir] : []), join(dir, 'state')]);
    await agent?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('provisions, mounts, grows, snapshots and restores with the data intact', async () => {
    await pvcLife({
      provisioner,
      kubelet: () => kubelet,
      restartNodePlugin: async () => {
        await nodePlugin.close();
        kubelet.close();
        await startNodePlugin();
      },
      backend: 'files',
      // ext4 grows online only with CAP_SYS_RESOURCE (resize2fs's ioctl): without it (a sandbox), xfs.
      fsType: hasCapability(24) ? 'ext4' : 'xfs',
      root: dir,
      unique: `life-${process.pid}`,
      files: {
        mkdir: async (path) => void (await mkdir(path, { recursive: true })),
        write: (path, text) => writeFile(path, text),
        read: (path) => readFile(path, 'utf8'),
        exists: async (path) => existsSync(path),
        fsType: async (path) => (await mountAt(path))?.fsType ?? '',
      },
    });
  });
});
