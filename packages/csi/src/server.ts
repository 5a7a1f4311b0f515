import { rm } from 'node:fs/promises';
import { Server, ServerCredentials, status, type handleUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { Agent, Fleet, type TlsOptions } from '@kindling/sdk';
import { Controller } from './controller.js';
import { grpcStatusOf } from './errors.js';
import { rpcLine } from './log.js';
import { Identity, type Mode } from './identity.js';
import { Node } from './node.js';
import { DEFAULT_STATE_DIR } from './plugin.js';
import { GroupController } from './group-controller.js';
import { ControllerService, GroupControllerService, IdentityService, NodeService } from './proto.js';

export interface CsiServerOptions {
  mode: Mode;
  /** `unix:///path/csi.sock` (or any gRPC address). */
  endpoint: string;
  /** Every agent, for the controller. */
  agents: string[];
  /** This host's agent, for the node service; default the first of `agents`. */
  nodeAgent?: string;
  token?: string;
  tls?: TlsOptions;
  maxVolumesPerNode?: number;
  /** The controller's: thin pool fill (percent) above which its volumes read abnormal. */
  thinPoolThresholdPercent?: number;
  /** The node service's own folder, kept across restarts (default DEFAULT_STATE_DIR). */
  stateDir?: string;
  /** Where the RPC log lines and the node's deferred-work notes go; default stderr. */
  log?: (line: string) => void;
}

export interface CsiServer {
  /** Where it listens: the endpoint as bound (the port filled in for tcp). */
  address: string;
  close(): Promise<void>;
}

type Handler = (request: unknown) => unknown;

/** Each method of `impl` as a gRPC unary handler whose rejections carry the CSI status; every call logged. */
function unary(impl: object, methods: readonly string[], log: (line: string) => void): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const name of methods) {
    const rpc = name.charAt(0).toLowerCase() + name.slice(1);
    const fn = (impl as Record<string, Handler>)[rpc];
    if (!fn) throw new Error(`no handler for ${name}`);
    const handler: handleUnaryCall<unknown, unknown> = (call, callback) => {
      const started = performance.now();
      const done = (error: { code: status; details: string } | null) => log(rpcLine(name, call.request, Math.round(performance.now() - started), error));
      Promise.resolve()
        .then(() => fn.call(impl, call.request))
        .then(
          (value) => {
            done(null);
            callback(null, value);
          },
          (err: unknown) => {
            const { code, details } = grpcStatusOf(err);
            done({ code, details });
            callback({ code, details, message: details });
          },
        );
    };
    out[name] = handler;
  }
  return out;
}

const names = (service: object): string[] => Object.values(service).map((m: { originalName?: string; path: string }) => m.path.split('/').pop()!);

/**
 * Opens the agent's link, in the background until it answers once (the SDK redials it after that).
 * `first` settles after the first try, so a plugin whose agent is up starts connected.
 */
function keepOpening(agent: Agent): { first: Promise<void>; stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const attempt = (delayMs: number): Promise<void> =>
    agent.open().then(
      () => undefined,
      () => {
        if (!stopped) timer = setTimeout(() => void attempt(Math.min(delayMs * 2, 5000)), delayMs);
      },
    );
  return {
    first: attempt(100),
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Starts the Identity service and, by mode, the Controller and Node services on one endpoint. */
export async function startCsiServer(options: CsiServerOptions): Promise<CsiServer> {
  const connect = { ...(options.token ? { token: options.token } : {}), ...(options.tls ? { tls: options.tls } : {}) };
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const server = new Server();
  const closers: (() => Promise<void>)[] = [];
  const ready: (() => Promise<boolean>)[] = [];
  try {
    if (options.mode !== 'node') {
      if (!options.agents.length) throw new Error('the controller needs agent URLs (--agents or KINDLING_URL)');
      const fleet = await Fleet.connect(options.agents, connect);
      closers.push(() => fleet.close());
      // Ready while some agent is: one host down must not restart the controller for the others.
      ready.push(async () => fleet.agents.some((a) => a.state === 'up'));
      server.addService(ControllerService, unary(new Controller(fleet, { thinPoolThresholdPercent: options.thinPoolThresholdPercent }), names(ControllerService), log));
      server.addService(GroupControllerService, unary(new GroupController(fleet), names(GroupControllerService), log));
    }
    if (options.mode !== 'controller') {
      const url = options.nodeAgent ?? options.agents[0];
      if (!url) throw new Error('the node service needs its host agent URL (--node-agent, --agents or KINDLING_URL)');
      // Unpublish and unstage need no agent: the node serves (and Probe is ready) while it is away.
      const agent = new Agent(url, { ...connect, reconnect: true });
      const opening = keepOpening(agent);
      closers.push(async () => {
        opening.stop();
        await agent.close();
      });
      await opening.first;
      ready.push(async () => true);
      server.addService(NodeService, unary(new Node(agent, { maxVolumesPerNode: options.maxVolumesPerNode ?? 0, stateDir: options.stateDir ?? DEFAULT_STATE_DIR, log }), names(NodeService), log));
    }
    // Ready while any service here can work: a liveness restart would not bring an agent back.
    const identity = new Identity(options.mode, async () => (await Promise.all(ready.map((r) => r()))).some(Boolean));
    server.addService(IdentityService, unary(identity, names(IdentityService), log));
    if (options.endpoint.startsWith('unix://')) await rm(options.endpoint.slice('unix://'.length), { force: true });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(options.endpoint, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const address = options.endpoint.startsWith('unix:') ? options.endpoint : options.endpoint.replace(/:0$/, `:${port}`);
    return {
      address,
      close: async () => {
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        for (const close of closers) await close();
      },
    };
  } catch (err) {
    server.forceShutdown();
    for (const close of closers) await close();
    throw err;
  }
}

export { status };
