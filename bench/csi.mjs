// CSI benchmark: CreateVolume + DeleteVolume through kindling-csi's gRPC (unix socket), next to the
// same two operations through the SDK's Fleet, on one agent with an NFS backend of raw files on a
// local folder. `node bench/csi.mjs` after `pnpm build`. Removes what it made.
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Fleet } from '@kindling/sdk';
import { startAgentProcess } from '@kindling/agent/testing';
import { startCsiServer } from '../packages/csi/dist/index.js';
import { csiPackageDefinition } from '../packages/csi/dist/proto.js';
import { ratio, row, samplePair, sized } from './stats.mjs';

// gRPC is the CSI package's dependency, not the workspace root's: resolved from there.
const grpc = createRequire(resolve(import.meta.dirname, '../packages/csi/package.json'))('@grpc/grpc-js');
const N = Number(process.env.CSI_BENCH_RUNS ?? sized({ quick: 3, default: 30, full: 100 }));
const TOKEN = 'csi-bench-token-0123456789abcdef';
const GiB = 1024 ** 3;
const mount = { mount: { fsType: 'ext4' }, accessMode: { mode: 'SINGLE_NODE_WRITER' } };

const dir = await mkdtemp(join(tmpdir(), 'kindling-csi-bench-'));
const agent = await startAgentProcess({ token: TOKEN, backends: (d) => [{ name: 'nfs', driver: 'nfs', shares: [join(d, 'share')], format: 'raw', sparse: true }] });
const server = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'csi.sock')}`, agents: [agent.url], token: TOKEN, log: () => {} });
const Controller = grpc.loadPackageDefinition(csiPackageDefinition).csi.v1.Controller;
const client = new Controller(server.address, grpc.credentials.createInsecure());
const call = (method, request) => new Promise((res, rej) => client[method](request, (err, reply) => (err ? rej(err) : res(reply))));
const fleet = await Fleet.connect([agent.url], { token: TOKEN });

try {
  let n = 0;
  const [csi, sdk] = await samplePair(
    N,
    async () => {
      const { volume } = await call('CreateVolume', { name: `bench-csi-${++n}`, capacityRange: { requiredBytes: GiB }, volumeCapabilities: [mount] });
      await call('DeleteVolume', { volumeId: volume.volumeId });
    },
    async () => {
      const volume = await fleet.createVolume({ size: 1, name: `bench-sdk-${++n}` });
      await volume.delete();
    },
  );
  console.log('csi: CreateVolume + DeleteVolume of a 1 GiB raw file volume, one agent on loopback');
  console.log(row('through kindling-csi (gRPC, unix socket)', csi));
  console.log(row('through the SDK Fleet', sdk));
  console.log(ratio('kindling-csi / SDK', csi, sdk, 2));
} finally {
  client.close();
  await fleet.close();
  await server.close();
  await agent.dispose();
  await rm(dir, { recursive: true, force: true });
}
