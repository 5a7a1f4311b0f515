import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createAdaptorServer, upgradeWebSocket } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono, type Context } from 'hono';
import type { WebSocket, WebSocketServer } from 'ws';
import { UnauthorizedError, withoutSecrets } from '@kindling/protocol';
import type { Children } from '../exec/children.js';
import { log } from '../log.js';
import type { Services } from '../services.js';
import type { Transfers } from '../transfer/index.js';
import { CHALLENGE, roleOf, type Credentials, type Role } from './auth.js';
import type { Drain } from './drain.js';
import { edgeGuard, type EdgePolicy } from './edge.js';
import type { Metrics } from './metrics.js';

// The agent's HTTP endpoints in hono. Loaded after ready, at the first request server.ts does not answer
// itself: hono's node adapter subclasses the global Request and Response, whose first use loads Node's
// undici (issue 20: ~25 ms of a start).

export interface RouteContext {
  credentials: Credentials;
  edge: EdgePolicy;
  services: Services;
  children: Children;
  metrics: Metrics;
  drain: Drain;
  transfers: Transfers;
  wss: WebSocketServer;
  sessionCount(): number;
  /** The peer's address, for refusal and session logs. */
  peer(request: IncomingMessage): string | undefined;
  /** Starts the session of an upgraded /rpc connection; returns its end. */
  openSession(raw: WebSocket, role: Role, peer: string | undefined): () => void;
}

/**
 * The adapter's server, never listening itself: server.ts hands it the requests and upgrades it does not
 * answer (its own 'request' and 'upgrade' events), as hono's adapter would have received them.
 */
export function routes(ctx: RouteContext): EventEmitter {
  const { credentials, metrics, services } = ctx;
  const app = new Hono();
  /** hono's node adapter keeps the request as env.incoming. */
  const peer = (c: Context): string | undefined => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    return incoming && ctx.peer(incoming);
  };
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
  app.use(
    '*',
    edgeGuard(ctx.edge, (reason, value) => {
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
    const load = { sessions: ctx.sessionCount(), requestsInFlight: ctx.drain.inFlight, commandsRunning: ctx.children.count, commandsWaiting: ctx.children.waiting };
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
  app.get('/transfer/:id', (c) => {
    const transferId = c.req.param('id');
    const credential = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(c.req.header('authorization') ?? '')?.[1] ?? '';
    try {
      ctx.transfers.source.serve(transferId, credential, (c.env as { outgoing: ServerResponse }).outgoing);
      return RESPONSE_ALREADY_SENT;
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err;
      log.warn({ transferId }, err.message);
      return Response.json({ error: 'unauthorized' }, { status: 401 });
    }
  });
  app.get(
    '/rpc',
    async (c, next) => (authorized(c) ? next() : c.text('unauthorized\n', 401, challenge)),
    upgradeWebSocket((c) => {
      const role = roleOf(c.req.header('authorization'), credentials) ?? 'read';
      let close: (() => void) | undefined;
      return {
        onOpen: (_event, ws) => void (close = ctx.openSession(ws.raw as WebSocket, role, peer(c))),
        onClose: () => close?.(),
      };
    }),
  );
  return createAdaptorServer({ fetch: app.fetch, websocket: { server: ctx.wss } });
}
