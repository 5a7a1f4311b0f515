import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { startHeartbeat } from './heartbeat.js';

let wss: WebSocketServer | undefined;
let timer: NodeJS.Timeout | undefined;
afterEach(() => {
  clearInterval(timer);
  wss?.close();
});

async function serve(): Promise<string> {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  timer = startHeartbeat(wss, 50);
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
}

describe('heartbeat', () => {
  it('ends the session of a client that stopped answering pings', async () => {
    const client = new WebSocket(await serve(), { autoPong: false });
    await once(client, 'open');
    const started = Date.now();
    await once(client, 'close');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('keeps a client that answers', async () => {
    const client = new WebSocket(await serve());
    await once(client, 'open');
    await new Promise((r) => setTimeout(r, 300));
    expect(client.readyState).toBe(WebSocket.OPEN);
    client.close();
  });
});
