import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Progress } from '@kindling/protocol';
import type { AgentConfig } from '../config.js';
import type { Children } from '../exec/children.js';
import { log } from '../log.js';
import type { Services } from '../services.js';
import { roleOf, type Role } from './auth.js';
import { hostAllowed, originAllowed } from './edge.js';
import { Drain } from './drain.js';
import { startHeartbeat } from './heartbeat.js';
import { createHandlers } from './dispatch.js';
import { Metrics } from './metrics.js';
import { RequestLedger } from './requests.js';
import type { RouteContext } from './routes.js';
import { Session } from './session.js';
import { createTransfers } from '../transfer/index.js';

/** Frames are small maps; anything larger is refused by ws before it is decoded. */
const MAX_FRAME_BYTES = 1024 * 1024;
/** How often clients are pinged; one that missed the previous ping has its session ended. */
const HEARTBEAT_MS = 30_000;

export interface RpcServer {
  url: string;
  port: number;
  /** Stops taking work: no new connection, every session ended. Resolves once the listener has closed. */
  close(): Promise<void>;
  /** Whether no operation is in flight, waiting up to `timeoutMs` for that. */
  idle(timeoutMs: number): Promise<boolean>;
}

const pathOf = (url = '/'): string => url.split('?', 1)[0] as string;

/**
 * hono's HTTP endpoints (routes.ts) and the `/rpc` WebSocket on one port. The two requests a start waits
 * for, GET /healthz and an /rpc upgrade that passes the edge and credential checks, are answered here
 * without hono, which is loaded at the first other request (issue 20: its adapter loads Node's undici);
 * hono answers everything else, refusals included, as before.
 */
export async function startServer(config: AgentConfig, services: Services, children: Children): Promise<RpcServer> {
  const metrics = new Metrics();
  const ledger = new RequestLedger(services.index, {
    volume: (id) => services.index.getVolume(id),
    snapshot: (id) => services.index.getSnapshot(id),
    connection: (id) => services.index.getConnection(id),
    group: (id) => services.index.getGroup(id),
  });
  let baseUrl = '';
  const transfers = createTransfers(services, () => baseUrl, () => children.slot(true));
  const handlers = createHandlers(services, ledger, transfers);
  const pruning = setInterval(() => void ledger.prune().catch(() => undefined), 60 * 60 * 1000);
  const sessions = new Set<Session>();
  const drain = new Drain();
  services.events.subscribe((event) => {
    // Where the change sequence stands as this goes out: a client resyncs from there after a reconnect.
    const stamped = { ...event, seq: services.index.changes.position().seq };
    for (const session of sessions) session.push(stamped);
  });
  const progressVolume = ({ kind, id }: Progress) => {
    const volume = services.index.getVolume(kind === 'volume' ? id : (services.index.getSnapshot(id)?.volumeId ?? ''));
    return volume && { volumeId: volume.id, backend: volume.backend };
  };

  const credentials = { token: config.token, readTokens: config.readTokens };
  const edge = { allowedHosts: config.allowedHosts, allowedOrigins: config.allowedOrigins, listenHost: config.listen.host };
  const peer = (request: IncomingMessage): string | undefined => request.socket.remoteAddress;
  const openSession = (raw: WebSocket, role: Role, from: string | undefined): (() => void) => {
    const sessionLog = log.child({ session: randomUUID().slice(0, 8), peer: from, role });
    const sink = {
      send: (bytes: Uint8Array) => raw.send(bytes),
      unsentBytes: () => raw.bufferedAmount,
      terminate: (reason: string) => {
        sessionLog.warn(`ending a session: ${reason}`);
        raw.terminate();
      },
    };
    const session = new Session(sink, { handlers, metrics, drain, limits: config.limits, ledger, progressVolume }, role, sessionLog);
    sessions.add(session);
    // Frames straight from ws, not through hono's onMessage: that builds a MessageEvent and copies each
    // frame into a fresh ArrayBuffer (issue 20). No frame can come before this: the client waits for the
    // upgrade's answer, and ws reads the socket only after this turn.
    raw.on('message', (data: Buffer, isBinary: boolean) => void session.receive(isBinary ? data : null));
    sessionLog.debug('session opened');
    return () => {
      sessionLog.debug('session closed');
      sessions.delete(session);
    };
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const heartbeat = startHeartbeat(wss, HEARTBEAT_MS);
  let hono: Promise<EventEmitter> | undefined;
  const routes = (): Promise<EventEmitter> => {
    const context: RouteContext = { credentials, edge, services, children, metrics, drain, transfers, wss, sessionCount: () => sessions.size, peer, openSession };
    return (hono ??= import('./routes.js').then((m) => m.routes(context)));
  };
  /** What hono's edge guard lets through: the requests answered here are only those. */
  const edgeAllows = (request: IncomingMessage): boolean => hostAllowed(request.headers.host, edge) && originAllowed(request.headers.origin, edge);

  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    if (request.method === 'GET' && pathOf(request.url) === '/healthz' && edgeAllows(request)) {
      const body = JSON.stringify({ status: 'ok', hostId: services.hostId, version: services.agentVersion });
      response.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
      return;
    }
    routes().then(
      (server) => server.emit('request', request, response),
      (err: unknown) => {
        log.error({ err }, 'cannot load the HTTP routes');
        response.destroy();
      },
    );
  };
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const role = roleOf(request.headers.authorization, credentials);
    const websocket = request.headers.upgrade?.toLowerCase() === 'websocket';
    if (request.method === 'GET' && websocket && pathOf(request.url) === '/rpc' && role !== null && edgeAllows(request)) {
      wss.handleUpgrade(request, socket, head, (raw) => {
        // As hono's adapter does: an error on a session's socket is its end, not the agent's.
        raw.on('error', () => undefined);
        raw.on('close', openSession(raw, role, peer(request)));
        wss.emit('connection', raw, request);
      });
      return;
    }
    // Until hono's adapter has its own listener on it, an error on the socket must not go unheard.
    const ignore = () => undefined;
    socket.on('error', ignore);
    routes().then(
      (server) => {
        server.emit('upgrade', request, socket, head);
        socket.off('error', ignore);
      },
      (err: unknown) => {
        log.error({ err }, 'cannot load the HTTP routes');
        socket.destroy();
      },
    );
  };
  const tls = config.tls;
  const server = tls
    ? createHttpsServer({
        cert: readFileSync(tls.cert),
        key: readFileSync(tls.key),
        // Mutual TLS: only clients whose certificate chains to this CA get past the handshake.
        ...(tls.clientCa ? { ca: readFileSync(tls.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
      })
    : createHttpServer();
  server.on('request', onRequest);
  server.on('upgrade', onUpgrade);
  server.on('close', () => wss.close());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  // After listening: the prune reads a day of request marks, which ready need not wait for (a retry
  // of a request pruned meanwhile is answered as a new one either way, as between hourly prunes).
  void ledger.prune().catch(() => undefined);
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  baseUrl = `${tls ? 'https' : 'http'}://${host}:${port}`;
  return {
    url: `${tls ? 'wss' : 'ws'}://${host}:${port}/rpc`,
    port,
    close: () => {
      clearInterval(heartbeat);
      clearInterval(pruning);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const client of wss.clients) client.terminate();
      return closed;
    },
    idle: (timeoutMs) => drain.idle(timeoutMs),
  };
}
