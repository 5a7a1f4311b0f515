import { messageOf } from '@kindling/protocol';
import type { AgentConfig } from './config.js';
import { Children } from './exec/children.js';
import { createRunner, type Runner } from './exec/run.js';
import { EXIT, StartupError } from './exit.js';
import { log } from './log.js';
import type { RpcServer } from './rpc/server.js';
import { openServices, type Services } from './services.js';
import { ensureToken } from './token.js';

export interface RunningAgent {
  url: string;
  port: number;
  services: Services;
  stop(): Promise<void>;
}

export interface StopOptions {
  /** How long a stop lets operations in flight (a create, a thick copy) finish before ending their commands. */
  drainMs?: number;
}

const DRAIN_MS = 30_000;
/** Once their commands are ended, operations only record their failure: this bounds that wait. */
const SETTLE_MS = 15_000;

/** Errors of listen(2) that mean "not here, not now", worded for the operator. */
const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'the port is in use (another agent?)',
  EADDRNOTAVAIL: 'the address is not one of this host',
  EACCES: 'permission denied (a port below 1024 needs root)',
};

async function open(config: AgentConfig, runner: Runner): Promise<Services> {
  try {
    return await openServices(config, runner, { deferCheck: true });
  } catch (err) {
    throw new StartupError(`cannot open the index under ${config.dataDir}: ${messageOf(err)}`, EXIT.INDEX);
  }
}

async function generatedToken(dataDir: string): Promise<string> {
  const { token, file, created } = await ensureToken(dataDir);
  log.info({ file }, created ? `made the agent's token in ${file}` : `using the agent's token from ${file}`);
  return token;
}

/** Opens the index, starts the backends, resolves interrupted operations, then serves. */
export async function startAgent(given: AgentConfig, runner?: Runner, options: StopOptions = {}): Promise<RunningAgent> {
  // No agent serves unauthenticated: without a configured token it uses (or makes) <dataDir>/token.
  const config = given.token ? given : { ...given, token: await generatedToken(given.dataDir) };
  // ws looks for its optional native helpers as it loads; the agent ships neither, and the failed
  // lookups (a walk up every node_modules folder) cost start time.
  process.env.WS_NO_BUFFER_UTIL ??= '1';
  process.env.WS_NO_UTF_8_VALIDATE ??= '1';
  // The server's code (hono, ws: most of what the agent loads) compiles while the index opens its
  // files on the thread pool; a failure to load it is thrown below, once the index can be closed.
  const serverCode = import('./rpc/server.js');
  serverCode.catch(() => undefined);
  const children = new Children(config.limits);
  const services = await open(config, runner ?? createRunner(children));
  let server: RpcServer;
  try {
    const { startServer } = await serverCode;
    server = await startServer(config, services, children);
    services.serving();
  } catch (err) {
    await services.close();
    const why = LISTEN_ERRORS[(err as { code?: string }).code ?? ''];
    throw why ? new StartupError(`cannot listen on ${config.listen.host}:${config.listen.port}: ${why}`, EXIT.LISTEN) : err;
  }
  return {
    url: server.url,
    port: server.port,
    services,
    stop: async () => {
      const closed = server.close();
      const drainMs = options.drainMs ?? DRAIN_MS;
      const drained = await server.idle(drainMs);
      if (!drained) {
        log.warn({ drainMs, commands: children.count }, `stopping: operations still running after ${drainMs} ms; ending the ${children.count} command(s) running`);
      }
      // From here no command starts, and those still running are ended: their operations fail and
      // write their error records through the usual failure path, so nothing half-done reads as done.
      children.endAll();
      if (!drained && !(await server.idle(SETTLE_MS))) {
        // Closing the index under a running operation would lose its end state: leave it to recovery.
        throw new Error('operations still running after their commands were ended; the index was not closed');
      }
      await closed;
      await services.close(drained);
    },
  };
}
