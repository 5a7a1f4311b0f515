import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csiClient } from '../packages/csi/src/testing/client.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// kindling-csi as Kubernetes runs it: the built bin, flags and environment, Probe following the agent.
const BIN = resolve(import.meta.dirname, '../packages/csi/dist/bin.js');
const TOKEN = 'csi-bin-token-0123456789abcdef';

let agent: AgentProcess;
let dir: string;

function startBin(args: string[], env: Record<string, string>): { child: ChildProcess; listening: Promise<{ endpoint: string }>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const listening = new Promise<{ endpoint: string }>((res, rej) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event: string; endpoint: string };
      if (msg.event === 'listening') res(msg);
    });
    void exit.then((code) => rej(new Error(`kindling-csi exited ${code}`)));
  });
  // A bin that exits at once never listens: that is the caller's to assert, not an unhandled rejection.
  listening.catch(() => {});
  return { child, listening, exit };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-csi-bin-'));
  // A fixed port, so the agent comes back where the plugin looks for it after a restart.
  const port = await new Promise<number>((res) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as AddressInfo;
      probe.close(() => res(free));
    });
  });
  agent = await startAgentProcess({ token: TOKEN, port });
});

afterAll(async () => {
  await agent?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kindling-csi', () => {
  it('serves on a unix socket with the token from the environment, and its Probe follows the agent', async () => {
    const endpoint = `unix://${join(dir, 'csi.sock')}`;
    const bin = startBin(['--mode', 'node', '--endpoint', endpoint], { KINDLING_URL: agent.url, KINDLING_TOKEN: TOKEN });
    expect((await bin.listening).endpoint).toBe(endpoint);
    const identity = csiClient('Identity', endpoint);
    const node = csiClient('Node', endpoint);
    expect((await node.NodeGetInfo({})).nodeId).toBe(agent.hostId);
    expect(await identity.Probe({})).toEqual({ ready: { value: true } });
    await agent.stop();
    await expect.poll(async () => (await identity.Probe({})).ready.value).toBe(false);
    agent = await agent.restart();
    await expect.poll(async () => (await identity.Probe({})).ready.value, { timeout: 15_000 }).toBe(true);
    identity.close();
    node.close();
    bin.child.kill('SIGTERM');
    expect(await bin.exit).toBe(0);
  });

  it('exits 2 with the usage on bad flags', async () => {
    const bin = startBin(['--mode', 'sideways'], {});
    expect(await bin.exit).toBe(2);
  });
});
