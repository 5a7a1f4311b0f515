import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '@kindling/sdk';
import { Relay } from '../packages/sdk/src/testing/relay.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

let proc: AgentProcess;
let relay: Relay;
let watcher: Agent;
let direct: Agent;

beforeAll(async () => {
  proc = await startAgentProcess();
  relay = await Relay.start(proc.port);
  watcher = await Agent.connect(relay.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, keepaliveMs: 100 });
  direct = await Agent.connect(proc.url);
});
afterAll(async () => {
  await watcher?.close();
  await direct?.close();
  await relay?.close();
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
