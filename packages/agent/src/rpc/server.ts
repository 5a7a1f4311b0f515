import { randomUUID } from 'node:crypto';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { createAdaptorServer, upgradeWebSocket } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { WebSocketServer, type WebSocket } from 'ws';
import { withoutSecrets, type Progress } from '@kindling/protocol';
import type { AgentConfig } from '../config.js';
import type { Children } from '../exec/children.js';
import { log } from '../log.js';
import type { Services } from '../services.js';
import { CHALLENGE, roleOf } from './auth.js';
import { edgeGuard } from './edge.js';
import { Drain } from './drain.js';
import { startHeartbeat } from './heartbeat.js';
import { createHandlers } from './dispatch.js';
import { Metrics } from './metrics.js';
import { RequestLedger } from './requests.js';
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

/** hono's HTTP endpoints and the `/rpc` WebSocket on one port. */
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

  const app = new Hono();
  const credentials = { token: config.token, readTokens: config.readTokens };
  /** The peer's address, for refusal and session logs (hono's node adapter keeps the request as env.incoming). */
  const peer = (c: Context): string | undefined => (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket.remoteAddress;
  // Reading needs any credential; /rpc sessions carry their role and refuse changes to readers.
  const authorized = (c: Context): boolean => {
    if (roleOf(c.req.header('authorization'), credentials) !== null) return true;
    metrics.refused('bad_token');
    // Whether a credential came at all tells a misconfigured client from a probe; the credential itself is never logged.
    const presented = c.req.header('authorization') !== undefined;
    log.warn({ peer: peer(c), path: c.req.path, presented }, `refused ${c.req.path}: ${presented ? 'wrong credential' : 'no credential'}`);
    return false;
  };
  const challenge = { 'www-authenticate': CHALLENGE };
  const edge = { allowedHosts: config.allowedHosts, allowedOrigins: config.allowedOrigins, listenHost: config.listen.host };
  app.use(
    '*',
    edgeGuard(edge, (reason, value) => {
      metrics.refused(reason);
      log.warn({ [reason]: value }, `refused a request from ${reason} ${value}`);
    }),
  );

  app.get('/healthz', (c) => c.json({ status: 'ok', hostId: services.hostId, version: services.agentVersion }));
  app.get('/readyz', async (c) => {
    const backends = await services.backends.readiness();
    const ready = backends.every((b) => b.ready);
    return c.json({ ready, hostId: services.hostId, backends }, ready ? 200 : 503);
  });
  app.use('/metrics', async (c, next) => (authorized(c) ? next() : c.text('unauthorized\n', 401, challenge)));
  app.use('/v1/*', async (c, next) => (authorized(c) ? next() : c.json({ error: 'unauthorized' }, 401, challenge)));
  app.get('/metrics', async (c) => {
    const readiness = await services.backends.readiness();
    const stats = await Promise.all(
      readiness.filter((r) => r.ready).map((r) => services.backends.stats(r.name, false).catch(() => null)),
    );
    const load = { sessions: sessions.size, requestsInFlight: drain.inFlight, commandsRunning: children.count, commandsWaiting: children.waiting };
    const text = await metrics.render(stats.filter((s) => s !== null), readiness, load);
    return c.text(text, 200, { 'content-type': metrics.contentType });
  });
  /** /v1 answers a read credential as /rpc does a read session: without secrets. */
  const v1 = <T>(c: Context, body: T) => c.json(roleOf(c.req.header('authorization'), credentials) === 'admin' ? body : withoutSecrets(body));
  app.get('/v1/backends', async (c) => v1(c, await services.backends.readiness()));
  app.get('/v1/backends/:name/stats', async (c) => {
    const name = c.req.param('name');
    try {
      return v1(c, await services.backends.stats(name, c.req.query('refresh') === 'true'));
    } catch (err) {
      const code = (err as { code?: string }).code;
      return c.json({ error: (err as Error).message, code }, code === 'NOT_FOUND' ? 404 : 503);
    }
  });
  // Copies between agents: the transfer credential, not an agent token, opens one read (transfer/).
  app.get('/transfer/:id', (c) => transfers.route(c.req.param('id'), c.req.header('authorization'), (c.env as { outgoing: ServerResponse }).outgoing));
  app.get(
    '/rpc',
    async (c, next) => (authorized(c) ? next() : c.text('unauthorized\n', 401, challenge)),
    upgradeWebSocket((c) => {
      const role = roleOf(c.req.header('authorization'), credentials) ?? 'read';
      const sessionLog = log.child({ session: randomUUID().slice(0, 8), peer: peer(c), role });
      let session: Session | undefined;
      return {
        onOpen(_event, ws) {
          const raw = ws.raw as WebSocket;
          const sink = {
            send: (bytes: Uint8Array) => raw.send(bytes),
            unsentBytes: () => raw.bufferedAmount,
            terminate: (reason: string) => {
              sessionLog.warn(`ending a session: ${reason}`);
              raw.terminate();
            },
          };
          const opened = new Session(sink, { handlers, metrics, drain, limits: config.limits, ledger, progressVolume }, role, sessionLog);
          session = opened;
          sessions.add(opened);
          // Frames straight from ws, not through hono's onMessage: that builds a MessageEvent and copies
          // each frame into a fresh ArrayBuffer (issue 20). No frame can come before this: the client
          // waits for the upgrade's answer, and ws reads the socket only after this turn.
          raw.on('message', (data: Buffer, isBinary: boolean) => void opened.receive(isBinary ? data : null));
          sessionLog.debug('session opened');
        },
        onClose() {
          sessionLog.debug('session closed');
          if (session) sessions.delete(session);
        },
      };
    }),
  );

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const heartbeat = startHeartbeat(wss, HEARTBEAT_MS);
  const tls = config.tls;
  const server = createAdaptorServer({
    fetch: app.fetch,
    websocket: { server: wss },
    ...(tls
      ? {
          createServer: createHttpsServer,
          serverOptions: {
            cert: readFileSync(tls.cert),
            key: readFileSync(tls.key),
            // Mutual TLS: only clients whose certificate chains to this CA get past the handshake.
            ...(tls.clientCa ? { ca: readFileSync(tls.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
          },
        }
      : {}),
  });
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
