import { afterEach, describe, expect, it } from 'vitest';
import { TimeoutError } from '@kindling/protocol';
import { Fleet } from '../fleet.js';
import { StandInAgent } from '../testing/stand-in-agent.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

const HOSTS = 3;
const PER_HOST = 2;

describe('fleet placement over equal hosts', () => {
  // The agent replies before it pushes the new capacity, and under load that push comes in a later frame
  // (modelled by the delay): placement must count an answered create until the push, or the next create
  // sees the stale figures and picks the same host.
  it('spreads sequential creates evenly, every time (20 runs)', async () => {
    for (let run = 0; run < 20; run++) {
      const hosts = await Promise.all(
        Array.from({ length: HOSTS }, (_, i) => StandInAgent.start({ hostId: `host-${i}`, backends: [{ name: 'nfs', driver: 'nfs' }], capacityPushDelayMs: 20 })),
      );
      for (const host of hosts) open.push({ close: () => host.stop() });
      const fleet = await Fleet.connect(hosts.map((h) => h.url));
      open.push(fleet);

      const placed: string[] = [];
      for (let i = 0; i < HOSTS * PER_HOST; i++) {
        const vol = await fleet.createVolume({ size: 1 });
        placed.push(fleet.agentOf(vol).hostId!);
      }
      const perHost = hosts.map((h) => placed.filter((id) => id === h.hostId).length);
      expect({ run, perHost }).toEqual({ run, perHost: hosts.map(() => PER_HOST) });
      for (const x of open.splice(0).reverse()) await x.close();
    }
  });
});

describe('a fleet create whose reply does not come in time', () => {
  it('names the agent, backend and request id; asking that backend again by the id gives the volume, made once', async () => {
    const host = await StandInAgent.start({ backends: [{ name: 'nfs', driver: 'nfs' }] });
    open.push({ close: () => host.stop() });
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    host.handle('volume.create', async (a) => {
      await done;
      return host.newVolume({ backend: String(a.backend), size: Number(a.size) });
    });
    const fleet = await Fleet.connect([host.url]);
    open.push(fleet);

    const err = await fleet.createVolume({ size: 1, timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    const { url, backend, requestId } = (err as TimeoutError).details as { url: string; backend: string; requestId: string };
    expect({ url, backend }).toEqual({ url: host.url, backend: 'nfs' });

    release();
    const member = fleet.agents.find((a) => a.url === url)!;
    const vol = await (await member.agent.backend(backend)).createVolume({ size: 1, requestId });
    expect(host.executions(requestId)).toBe(1);
    expect([...host.volumes.keys()]).toEqual([vol.id]);
  });
});
