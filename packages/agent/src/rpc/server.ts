import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { createAdaptorServer, upgradeWebSocket } from '@hono/node-server';
import { Hono } from 'hono';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AgentConfig } from '../config.js';
import type { Services } from '../services.js';
import { bearerMatches } from './auth.js';
import { Drain } from './drain.js';
import { startHeartbeat } from './heartbeat.js';
import { createHandlers } from './dispatch.js';
import { Metrics } from './metrics.js';
import { Session } from './session.js';

/** Frames are small maps; anything larger is refused by ws before it is decoded. */
const MAX_FRAME_BYTES = 1024 * 1024;
/** How often clients are pinged; one that missed the previous ping has its session ended. */
const HEARTBEAT_MS = 30_000;

export interface RpcServer {
  url: string;
  port: number;
  sessions(): number;
  /** Stops taking work: no new connection, every session ended. Resolves once the listener has closed. */
  close(): Promise<void>;
  /** Whether no operation is in flight, waiting up to `timeoutMs` for that. */
  idle(timeoutMs: number): Promise<boolean>;
}

/** hono's HTTP endpoints and the `/rpc` WebSocket on one port. */
export async function startServer(config: AgentConfig, services: Services): Promise<RpcServer> {
  const metrics = new Metrics();
  const handlers = createHandlers(services);
  const sessions = new Set<Session>();
  const drain = new Drain();
  services.events.subscribe((event) => {
    for (const session of sessions) session.push(event);
  });

  const app = new Hono();
  const authorized = (header: string | undefined) => bearerMatches(header, config.token);

  app.get('/healthz', (c) => c.json({ status: 'ok', hostId: services.hostId, version: services.agentVersion }));
  app.get('/readyz', async (c) => {
    const backends = await services.backends.readiness();
    const ready = backends.every((b) => b.ready);
    return c.json({ ready, hostId: services.hostId, backends }, ready ? 200 : 503);
  });
  app.use('/metrics', async (c, next) => (authorized(c.req.header('authorization')) ? next() : c.text('unauthorized\n', 401)));
  app.use('/v1/*', async (c, next) => (authorized(c.req.header('authorization')) ? next() : c.json({ error: 'unauthorized' }, 401)));
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
    async (c, next) => (authorized(c.req.header('authorization')) ? next() : c.text('unauthorized\n', 401)),
    upgradeWebSocket(() => {
      let session: Session | undefined;
      return {
        onOpen(_event, ws) {
          const raw = ws.raw as WebSocket;
          session = new Session({ send: (bytes) => raw.send(bytes) }, handlers, metrics, drain);
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
      ? { createServer: createHttpsServer, serverOptions: { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } }
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
    close: () => {
      clearInterval(heartbeat);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const client of wss.clients) client.terminate();
      return closed;
    },
    idle: (timeoutMs) => drain.idle(timeoutMs),
  };
}
