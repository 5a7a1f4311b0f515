import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, csiClient, status } from '../packages/csi/src/testing/client.js';
import { freePort } from '../packages/csi/src/testing/host.js';
import { startBin } from '../packages/csi/src/testing/bin.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// kindling-csi as Kubernetes runs it: the built bin, flags and environment, Probe following the agent.
const TOKEN = 'csi-bin-token-0123456789abcdef';
const sh = promisify(execFile);

let agent: AgentProcess;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-csi-bin-'));
  // A fixed port, so the agent comes back where the plugin looks for it after a restart.
  agent = await startAgentProcess({ token: TOKEN, port: await freePort() });
});

afterAll(async () => {
  await agent?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kindling-csi', () => {
  it('serves on a unix socket with the token from the environment, and stays ready while its agent is away', async () => {
    const endpoint = `unix://${join(dir, 'csi.sock')}`;
    const bin = startBin(['--mode', 'node', '--endpoint', endpoint, '--state-dir', join(dir, 'state')], { KINDLING_URL: agent.url, KINDLING_TOKEN: TOKEN });
    expect((await bin.listening).endpoint).toBe(endpoint);
    const identity = csiClient('Identity', endpoint);
    const node = csiClient('Node', endpoint);
    expect((await node.NodeGetInfo({})).nodeId).toBe(agent.hostId);
    expect(await identity.Probe({})).toEqual({ ready: { value: true } });
    // Node-local work goes on without the agent: a liveness restart would not bring the agent back.
    await agent.stop();
    await node.NodeUnpublishVolume({ volumeId: `${agent.hostId}:nfs:00000000-0000-4000-8000-000000000000`, targetPath: join(dir, 'never-published') });
    expect(await identity.Probe({})).toEqual({ ready: { value: true } });
    agent = await agent.restart();
    await expect.poll(async () => (await node.NodeGetInfo({})).nodeId, { timeout: 15_000 }).toBe(agent.hostId);
    identity.close();
    node.close();
    bin.child.kill('SIGTERM');
    expect(await bin.exit).toBe(0);
    // A stop, a restart and a redial with backoff: room for a loaded machine, not a timing claim.
  }, 60_000);

  it('starts and is ready without its agent', async () => {
    const port = await freePort();
    const endpoint = `unix://${join(dir, 'early.sock')}`;
    const bin = startBin(['--mode', 'node', '--endpoint', endpoint, '--state-dir', join(dir, 'state'), '--node-agent', `ws://127.0.0.1:${port}/rpc`], { KINDLING_TOKEN: TOKEN });
    expect((await bin.listening).endpoint).toBe(endpoint);
    const identity = csiClient('Identity', endpoint);
    expect(await identity.Probe({})).toEqual({ ready: { value: true } });
    identity.close();
    bin.child.kill('SIGTERM');
    expect(await bin.exit).toBe(0);
  });

  it('logs every RPC with its method, duration and code, and no secret', async () => {
    const endpoint = `unix://${join(dir, 'logged.sock')}`;
    const bin = startBin(['--mode', 'node', '--endpoint', endpoint, '--state-dir', join(dir, 'state')], { KINDLING_URL: agent.url, KINDLING_TOKEN: TOKEN });
    await bin.listening;
    const node = csiClient('Node', endpoint);
    const stage = { volumeId: `${agent.hostId}:nfs:00000000-0000-4000-8000-000000000000`, stagingTargetPath: join(dir, 'st'), volumeCapability: { mount: { fsType: 'ext4' }, accessMode: { mode: 'SINGLE_NODE_WRITER' } }, secrets: { password: 'do-not-log-me' } };
    expect(await codeOf(node.NodeStageVolume(stage))).toBe(status.NOT_FOUND);
    await node.NodeGetCapabilities({});
    node.close();
    bin.child.kill('SIGTERM');
    expect(await bin.exit).toBe(0);
    const lines = bin.stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ event: 'rpc', method: 'NodeStageVolume', code: 'NOT_FOUND', durationMs: expect.any(Number) }));
    expect(lines).toContainEqual(expect.objectContaining({ event: 'rpc', method: 'NodeGetCapabilities', code: 'OK' }));
    expect(bin.stderr() + bin.stdout()).not.toContain('do-not-log-me');
  });

  it('reaches a mutual-TLS agent with the CA, certificate and key it is given', async () => {
    const tls = await mkdtemp(join(dir, 'tls-'));
    // Self-signed: the agent's certificate is the plugin's CA, the plugin's certificate the agent's client CA.
    const selfSigned = (name: string, subject: string, san: string) =>
      sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tls, `${name}.key`), '-out', join(tls, `${name}.pem`), '-days', '1', '-subj', `/CN=${subject}`, '-addext', san]);
    await selfSigned('server', 'localhost', 'subjectAltName=IP:127.0.0.1');
    await selfSigned('client', 'kindling-csi', 'basicConstraints=critical,CA:TRUE');
    const secured = await startAgentProcess({ token: TOKEN, config: { tls: { cert: join(tls, 'server.pem'), key: join(tls, 'server.key'), clientCa: join(tls, 'client.pem') } } });
    const endpoint = `unix://${join(dir, 'tls.sock')}`;
    const bin = startBin(['--mode', 'node', '--endpoint', endpoint, '--state-dir', join(dir, 'state'), '--node-agent', secured.url, '--tls-cert', join(tls, 'client.pem'), '--tls-key', join(tls, 'client.key')], {
      KINDLING_TOKEN: TOKEN,
      KINDLING_TLS_CA: join(tls, 'server.pem'),
    });
    try {
      await bin.listening;
      const node = csiClient('Node', endpoint);
      expect(secured.url).toMatch(/^wss:/);
      expect((await node.NodeGetInfo({})).nodeId).toBe(secured.hostId);
      node.close();
    } finally {
      bin.child.kill('SIGTERM');
      await bin.exit;
      await secured.dispose();
    }
  });

  it('answers --help with the usage and exit 0', async () => {
    const bin = startBin(['--help'], {});
    expect(await bin.exit).toBe(0);
    expect(bin.stdout()).toMatch(/^usage: kindling-csi --mode/);
  });

  it('exits 2 with the usage on bad flags', async () => {
    const bin = startBin(['--mode', 'sideways'], {});
    expect(await bin.exit).toBe(2);
  });
});
