import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';

/**
 * A loopback relay between a client and the agent that measures every frame the agent sends and can
 * cut the client's link (a network fault), so a test or the bench sees what the SDK cannot tell it.
 */
export interface Relay {
  url: string;
  largestFrame: () => number;
  /** Bytes the agent has sent through the relay so far. */
  sent: () => number;
  cutAll: () => void;
  /** Holds new links short of the agent (the client's redial waits) until the returned release is called. */
  hold: () => () => void;
  close: () => Promise<void>;
}

const MAX_PAYLOAD = 64 * 1024 * 1024;

export async function relayTo(target: string): Promise<Relay> {
  let largest = 0;
  let sent = 0;
  let held: Promise<void> = Promise.resolve();
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MAX_PAYLOAD });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  server.on('connection', async (client, request) => {
    const early: Buffer[] = [];
    let upstream: WebSocket | undefined;
    client.on('message', (data: Buffer) => (upstream?.readyState === WebSocket.OPEN ? upstream.send(data) : early.push(data)));
    client.on('close', () => upstream?.terminate());
    await held;
    if (client.readyState !== WebSocket.OPEN) return;
    upstream = new WebSocket(target, { headers: { authorization: request.headers.authorization ?? '' }, maxPayload: MAX_PAYLOAD });
    upstream.on('open', () => early.splice(0).forEach((d) => upstream.send(d)));
    upstream.on('message', (data: Buffer) => {
      largest = Math.max(largest, data.length);
      sent += data.length;
      client.send(data);
    });
    upstream.on('close', () => client.terminate());
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    largestFrame: () => largest,
    sent: () => sent,
    cutAll: () => server.clients.forEach((c) => c.terminate()),
    hold: () => {
      let release = () => {};
      held = new Promise((resolve) => (release = resolve));
      return release;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
