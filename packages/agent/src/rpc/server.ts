import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { createAdaptorServer, upgradeWebSocket } from '@hono/node-server';
import { Hono } from 'hono';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AgentConfig } from '../config.js';
import type { Services } from '../services.js';
import { CHALLENGE, roleOf } from './auth.js';
import { edgeGuard } from './edge.js';
import { Drain } from './drain.js';
import { startHeartbeat } from './heartbeat.js';
import { createHandlers } from './dispatch.js';
import { Metrics } from './metrics.js';
import { RequestLedger } from './requests.js';
import { Session } from './session.js';

/** Frames are small maps; anything larger is refused by ws before it is decoded. */
const MAX_FRAME_BYTES = 1024 * 1024;
/** How long a stop waits for operations in flight (a create or a thick copy) before closing the index. */
const STOP_GRACE_MS = 30_000;
/** How often clients are pinged; one that missed the previous ping has its session ended. */
const HEARTBEAT_MS = 30_000;

export interface RpcServer {
  url: string;
  port: number;
  sessions(): number;
  close(): Promise<void>;
}

/** hono's HTTP endpoints and the `/rpc` WebSocket on one port. */
export async function startServer(config: AgentConfig, services: Services): Promise<RpcServer> {
  const metrics = new Metrics();
  const handlers = createHandlers(services);
  const ledger = new RequestLedger(services.index, {
    volume: (id) => services.index.getVolume(id),
    snapshot: (id) => services.index.getSnapshot(id),
  });
  await ledger.prune();
  const pruning = setInterval(() => void ledger.prune().catch(() => undefined), 60 * 60 * 1000);
  const sessions = new Set<Session>();
  const drain = new Drain();
  services.events.subscribe((event) => {
    for (const session of sessions) session.push(event);
  });

  const app = new Hono();
  const credentials = { token: config.token, readTokens: config.readTokens };
  // Reading needs any credential; /rpc sessions carry their role and refuse changes to readers.
  const authorized = (header: string | undefined) => roleOf(header, credentials) !== null;
  const challenge = { 'www-authenticate': CHALLENGE };
  app.use('*', edgeGuard({ allowedHosts: config.allowedHosts, allowedOrigins: config.allowedOrigins, listenHost: config.listen.host }));

  app.get('/healthz', (c) => c.json({ status: 'ok', hostId: services.hostId, version: services.agentVersion }));
  app.get('/readyz', async (c) => {
    const backends = await services.backends.readiness();
    const ready = backends.every((b) => b.ready);
    return c.json({ ready, hostId: services.hostId, backends }, ready ? 200 : 503);
  });
  app.use('/metrics', async (c, next) => (authorized(c.req.header('authorization')) ? next() : c.text('unauthorized\n', 401, challenge)));
  app.use('/v1/*', async (c, next) =>
    authorized(c.req.header('authorization')) ? next() : c.json({ error: 'unauthorized' }, 401, challenge),
  );
  app.get('/metrics', async (c) => {
    const readiness = await services.backends.readiness();
    const stats = await Promise.all(
      readiness.filter((r) => r.ready).map((r) => services.backends.stats(r.name, false).catch(() => null)),
    );
    const text = metrics.render(stats.filter((s) => s !== null), readiness, sessions.size);
    return c.text(text, 200, { 'content-type': 'text/plain; version=0.0.4' });
  });
  app.get('/v1/backends', async (c) => c.json(await services.backends.readiness()));
  app.get('/v1/backends/:name/stats', async (c) => {
    const name = c.req.param('name');
    try {
      return c.json(await services.backends.stats(name, c.req.query('refresh') === 'true'));
    } catch (err) {
      const code = (err as { code?: string }).code;
      return c.json({ error: (err as Error).message, code }, code === 'NOT_FOUND' ? 404 : 503);
    }
  });
  app.get(
    '/rpc',
    async (c, next) => (authorized(c.req.header('authorization')) ? next() : c.text('unauthorized\n', 401, challenge)),
    upgradeWebSocket((c) => {
      const role = roleOf(c.req.header('authorization'), credentials) ?? 'read';
      let session: Session | undefined;
      return {
        onOpen(_event, ws) {
          const raw = ws.raw as WebSocket;
          const sink = {
            send: (bytes: Uint8Array) => raw.send(bytes),
            unsentBytes: () => raw.bufferedAmount,
            terminate: (reason: string) => {
              console.error(`kindling-agent: ending a session: ${reason}`);
              raw.terminate();
            },
          };
          session = new Session(sink, { handlers, metrics, drain, limits: config.limits, ledger }, role);
          sessions.add(session);
        },
        onMessage(event) {
          void session?.receive(event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : null);
        },
        onClose() {
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
  const { port } = server.address() as AddressInfo;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  return {
    url: `${tls ? 'wss' : 'ws'}://${host}:${port}/rpc`,
    port,
    sessions: () => sessions.size,
    close: async () => {
      clearInterval(heartbeat);
      clearInterval(pruning);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const client of wss.clients) client.terminate();
      // Operations under way finish their storage commands and index writes before the index closes.
      await drain.idle(STOP_GRACE_MS);
      await closed;
    },
  };
}
