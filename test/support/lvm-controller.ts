import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLoopVg, type LoopVg } from '@kindling/agent/testing';
import { startCsiServer, type CsiServer } from '../../packages/csi/src/index.js';
import { csiClient, type CsiServiceClient } from '../../packages/csi/src/testing/client.js';
import { startAgentProcess, type AgentOptions, type AgentProcess } from './agent-process.js';

/** A CSI controller over one real agent whose backends sit on a throw-away loop VG. */
export interface LvmController {
  vg: LoopVg;
  agent: AgentProcess;
  controller: CsiServiceClient;
  dispose(): Promise<void>;
}

/** `backends` gets the VG and the agent's folder, as AgentOptions' own `backends` gets the folder. */
export async function startLvmController(options: {
  name: string;
  token: string;
  sizeMiB: number;
  config?: AgentOptions['config'];
  backends: (vg: LoopVg, dir: string) => unknown[];
}): Promise<LvmController> {
  const dir = await mkdtemp(join(tmpdir(), `kindling-${options.name}-`));
  let vg: LoopVg | undefined;
  let agent: AgentProcess | undefined;
  let server: CsiServer | undefined;
  let controller: CsiServiceClient | undefined;
  // Whatever was made is taken down, also when a later step of the start failed.
  const dispose = async (): Promise<void> => {
    controller?.close();
    await server?.close();
    await agent?.dispose();
    await vg?.destroy();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const made = await createLoopVg({ sizeMiB: options.sizeMiB });
    vg = made;
    agent = await startAgentProcess({ token: options.token, config: options.config, backends: (d) => options.backends(made, d) });
    server = await startCsiServer({ mode: 'controller', endpoint: `unix://${join(dir, 'csi.sock')}`, agents: [agent.url], token: options.token });
    controller = csiClient('Controller', server.address);
    return { vg, agent, controller, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}
