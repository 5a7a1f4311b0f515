import type { AgentConfig } from './config.js';
import type { Runner } from './exec/run.js';
import { startServer, type RpcServer } from './rpc/server.js';
import { openServices, type Services } from './services.js';

export interface RunningAgent {
  url: string;
  port: number;
  services: Services;
  stop(): Promise<void>;
}

/** Opens the index, starts the backends, resolves interrupted operations, then serves. */
export async function startAgent(config: AgentConfig, runner?: Runner): Promise<RunningAgent> {
  const services = await openServices(config, runner);
  let server: RpcServer;
  try {
    server = await startServer(config, services);
  } catch (err) {
    await services.close();
    throw err;
  }
  return {
    url: server.url,
    port: server.port,
    services,
    stop: async () => {
      await server.close();
      await services.close();
    },
  };
}
