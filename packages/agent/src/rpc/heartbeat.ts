import type { WebSocket, WebSocketServer } from 'ws';

/**
 * Pings every client each interval; one that has not answered the previous ping is gone (its host died
 * or its route dropped) and is terminated, which ends its session instead of leaving it to TCP's timeout.
 */
export function startHeartbeat(wss: WebSocketServer, intervalMs: number): NodeJS.Timeout {
  const answered = new WeakMap<WebSocket, boolean>();
  const timer = setInterval(() => {
    for (const client of wss.clients) {
      if (answered.get(client) === false) {
        client.terminate();
        continue;
      }
      if (!answered.has(client)) client.on('pong', () => answered.set(client, true));
      answered.set(client, false);
      client.ping();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}
