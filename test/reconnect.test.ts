import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '@kindling/sdk';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

/** A TCP relay to the agent that can cut every link and refuse new ones: a network partition. */
class Relay {
  private readonly sockets = new Set<Socket>();
  private open = true;
  readonly server: Server;
  constructor(private readonly target: number) {
    this.server = createServer((client) => {
      if (!this.open) return client.destroy();
      const upstream = connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
  }
  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }
  cut(): void {
    this.open = false;
    for (const s of this.sockets) s.destroy();
  }
  /** Data stops flowing but no socket closes: a dead host or a dropped route, as the client sees it. */
  freeze(): void {
    this.open = false;
    for (const s of this.sockets) {
      s.unpipe();
      s.pause();
    }
  }
  heal(): void {
    this.open = true;
  }
}

let proc: AgentProcess;
let relay: Relay;
let watcher: Agent;
let direct: Agent;

beforeAll(async () => {
  proc = await startAgentProcess();
  relay = new Relay(proc.port);
  const port = await relay.listen();
  watcher = await Agent.connect(`ws://127.0.0.1:${port}`, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, keepaliveMs: 100 });
  direct = await Agent.connect(proc.url);
});
afterAll(async () => {
  await watcher?.close();
  await direct?.close();
  relay?.server.close();
  await proc?.dispose();
});

describe('after a reconnect', () => {
  it('objects show what changed while the link was down, with no call of the caller', async () => {
    const nfs = await watcher.backend('nfs');
    const kept = await nfs.createVolume({ size: 1, name: 'kept' });
    const doomed = await nfs.createVolume({ size: 1, name: 'doomed' });

    relay.cut();
    await once(watcher, 'disconnect');
    // Another controller changes things meanwhile; the pushes never reach the watcher.
    const there = await (await direct.backend('nfs')).volumes();
    const keptThere = there.find((v) => v.id === kept.id)!;
    const doomedThere = there.find((v) => v.id === doomed.id)!;
    await keptThere.extend(2);
    const snap = await keptThere.createSnapshot({ name: 'while-away' });
    await doomedThere.delete();
    expect(kept.size).toBe(1);

    relay.heal();
    await once(watcher, 'reconnect');
    expect(kept.size).toBe(2);
    expect([...kept.snapshots].map((s) => [s.id, s.name])).toEqual([[snap.id, 'while-away']]);
    expect(doomed.status).toBe('deleted');
  });

  it('a link that silently stops answering is noticed by keepalive pings and redialled', async () => {
    relay.freeze();
    const started = Date.now();
    await once(watcher, 'disconnect');
    // Two keepalive intervals: one ping unanswered, then the drop. No call had to time out.
    expect(Date.now() - started).toBeLessThan(2000);
    relay.heal();
    await once(watcher, 'reconnect');
    expect((await (await watcher.backend('nfs')).volumes()).length).toBeGreaterThan(0);
  });
});
