// Experiment: the echo through hono's node-server upgrade (as the agent), frames from raw ws.
import { createRequire } from 'node:module';
const require = createRequire('/work/wt/wire/packages/agent/package.json');
const { createAdaptorServer, upgradeWebSocket } = await import(require.resolve('@hono/node-server'));
const { Hono } = await import(require.resolve('hono'));
const { WebSocketServer } = await import(require.resolve('ws').replace(/index\.js$/, 'wrapper.mjs'));
import { decode, encode } from '@kindling/protocol';
const reply = JSON.parse(process.argv[2] ?? '{}');
const viaHono = process.env.VIA_HONO === '1';
const app = new Hono();
app.get('/rpc', upgradeWebSocket(() => ({
  onOpen(_e, ws) {
    if (!viaHono) ws.raw.on('message', (data) => { const { id } = decode(data); ws.raw.send(encode({ id, ok: true, result: reply })); });
  },
  ...(viaHono ? { onMessage(event, ws) { const { id } = decode(new Uint8Array(event.data)); ws.raw.send(encode({ id, ok: true, result: reply })); } } : {}),
})));
const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
const server = createAdaptorServer({ fetch: app.fetch, websocket: { server: wss } });
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => process.exit(0));
