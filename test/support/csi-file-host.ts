// One host for the CSI tests on file volumes: an agent process with the two file backends
// (packages/csi/src/testing/host.ts's fileBackends), the CSI plugin in `all` mode on a unix socket with its
// state folder in the test's folder, and clients of its Controller and Node services.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCsiServer, type CsiServer } from '../../packages/csi/src/index.js';
import { csiClient, type CsiServiceClient } from '../../packages/csi/src/testing/client.js';
import { cleanUpHost, fileBackends, freePort } from '../../packages/csi/src/testing/host.js';
import { startAgentProcess, TEST_TOKEN, type AgentProcess } from './agent-process.js';

export interface CsiFileHost {
  dir: string;
  /** The plugin's state folder (its daemons' exports, its attachment records). */
  stateDir: string;
  /** The agent as last (re)started. */
  agent: AgentProcess;
  server: CsiServer;
  controller: CsiServiceClient;
  node: CsiServiceClient;
  /** Restarts the agent at the same URL (the plugin finds it again there) with `env`. */
  restartAgent(env: Record<string, string>): Promise<AgentProcess>;
  /** Closes all, and removes what a failed test left on the host (mounts, loop devices, daemons). */
  close(): Promise<void>;
}

export async function startCsiFileHost(prefix: string): Promise<CsiFileHost> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const stateDir = join(dir, 'state');
  // A fixed port: a restarted agent comes back where the plugin looks for it.
  const agent = await startAgentProcess({ token: TEST_TOKEN, port: await freePort(), config: { hostId: 'node-a' }, backends: fileBackends });
  const server = await startCsiServer({ mode: 'all', endpoint: `unix://${join(dir, 'csi.sock')}`, agents: [agent.url], token: TEST_TOKEN, stateDir, log: () => {} }).catch(
    async (err: unknown) => {
      // A plugin that did not start leaves no host to close: its agent is stopped here.
      await agent.dispose();
      await rm(dir, { recursive: true, force: true });
      throw err;
    },
  );
  const host: CsiFileHost = {
    dir,
    stateDir,
    agent,
    server,
    controller: csiClient('Controller', server.address),
    node: csiClient('Node', server.address),
    async restartAgent(env) {
      host.agent = await host.agent.restart(env);
      return host.agent;
    },
    async close() {
      for (const c of [host.controller, host.node]) c.close();
      await server.close();
      cleanUpHost(dir, [host.agent.dir, stateDir]);
      await host.agent.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return host;
}
