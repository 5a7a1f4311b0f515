// The raw floor for the wire benchmark: a ws + msgpackr echo in its own process, as the agent is.
import { AsyncLocalStorage } from 'node:async_hooks'; const als = new AsyncLocalStorage(); als.run({}, () => {}); 
import { WebSocketServer } from 'ws';
import { decode, encode } from '@kindling/protocol';

const reply = JSON.parse(process.argv[2] ?? '{}');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port })));
wss.on('connection', (ws) =>
  ws.on('message', (data) => {
    const { id } = decode(data);
    ws.send(encode({ id, ok: true, result: reply }));
  }),
);
process.on('SIGTERM', () => process.exit(0));
