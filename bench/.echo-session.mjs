// Experiment: hono upgrade + the agent's Session with a handler that returns the record.
import { createRequire } from 'node:module';
const require = createRequire('/work/wt/wire/packages/agent/package.json');
const { createAdaptorServer, upgradeWebSocket } = await import(require.resolve('@hono/node-server'));
const { Hono } = await import(require.resolve('hono'));
const { WebSocketServer } = await import(require.resolve('ws').replace(/index\.js$/, 'wrapper.mjs'));
const A = '/work/wt/wire/packages/agent/dist';
const { Session } = await import(`${A}/rpc/session.js`);
const { Metrics } = await import(`${A}/rpc/metrics.js`);
const { Drain } = await import(`${A}/rpc/drain.js`);
const { log } = await import(`${A}/log.js`);
const reply = JSON.parse(process.argv[2] ?? '{}');
const handlers = { hello: () => ({ protocolVersion: 1 }), 'volume.get': () => reply };
const deps = { handlers, metrics: new Metrics(), drain: new Drain(), limits: { requestsInFlight: 100, unsentBytes: 1 << 20 }, ledger: {} };
const app = new Hono();
app.get('/rpc', upgradeWebSocket(() => ({
  onOpen(_e, ws) {
    const raw = ws.raw;
    const s = new Session({ send: (b) => raw.send(b), unsentBytes: () => raw.bufferedAmount, terminate: () => raw.terminate() }, deps, 'admin', log.child({ session: 'x' }));
    s.greeted = true;
    raw.on('message', (data, isBinary) => void s.receive(isBinary ? data : null));
  },
})));
const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
const server = createAdaptorServer({ fetch: app.fetch, websocket: { server: wss } });
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => process.exit(0));
