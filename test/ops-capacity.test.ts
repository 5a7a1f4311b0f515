import { spawnSync } from 'node:child_process';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventFrame } from '@kindling/protocol';
import { Agent } from '@kindling/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// Capacity and readiness as storage changes outside Kindling: the agent refreshes them on its own.
let proc: AgentProcess;
let agent: Agent;
beforeAll(async () => {
  proc = await startAgentProcess({ config: { capacityRefreshSeconds: 1 }, args: ['--log-level', 'info'] });
  agent = await Agent.connect(proc.url);
});
afterAll(async () => {
  await agent?.close();
  await proc?.dispose();
});

function nextEvent(match: (frame: EventFrame) => boolean): Promise<EventFrame> {
  return new Promise((resolve) => {
    const listener = (frame: EventFrame): void => {
      if (!match(frame)) return;
      agent.off('event', listener);
      resolve(frame);
    };
    agent.on('event', listener);
  });
}

type Entry = { level: string; msg: string; backend?: string };
async function logged(match: (e: Entry) => boolean): Promise<Entry | undefined> {
  const find = () =>
    proc
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Entry)
      .find(match);
  // A bound on the wait, not a measure: the refresh runs every second.
  for (let i = 0; i < 400 && !find(); i++) await new Promise((r) => setTimeout(r, 25));
  return find();
}

describe('capacity refresh', () => {
  it('pushes the capacity event when files written outside Kindling take space, and backend stats follow', async () => {
    const nfs = await agent.backend('nfs');
    const before = await nfs.stats();
    const pushed = nextEvent((f) => f.event === 'capacity' && f.resource.freeCapacityGb <= before.freeCapacityGb - 2);
    const share = join(proc.dir, 'share');
    expect(spawnSync('fallocate', ['-l', '3G', join(share, 'outside-kindling.bin')]).status).toBe(0);
    const frame = await pushed;
    expect(frame.resource).toMatchObject({ backendName: 'nfs' });
    expect((await nfs.stats()).freeCapacityGb).toBe(frame.event === 'capacity' ? frame.resource.freeCapacityGb : NaN);
  });

  it('logs a share that goes away at warn and its return at info', async () => {
    const share = join(proc.dir, 'share');
    await rename(share, `${share}.gone`);
    expect(await logged((e) => e.backend === 'nfs' && e.level === 'warn' && /^backend nfs is not ready: share .*share/.test(e.msg))).toBeDefined();
    await rename(`${share}.gone`, share);
    expect(await logged((e) => e.backend === 'nfs' && e.level === 'info' && e.msg === 'backend nfs is ready again')).toBeDefined();
  });

  it('refuses a volume that does not fit naming exact bytes, needed and free, and a free figure not rounded up', async () => {
    const nfs = await agent.backend('nfs');
    const refusal = (await nfs.createVolume({ size: 1_000_000 }).catch((e: unknown) => e)) as Error & { details?: Record<string, number> };
    expect(refusal.message).toMatch(/room for 1000000 GiB: needs 1073741824000000 bytes, \d+ bytes free$/);
    const free = Number(/(\d+) bytes free$/.exec(refusal.message)![1]);
    expect(refusal.details).toMatchObject({ neededBytes: 1073741824000000, freeBytes: free, freeGb: Math.floor((free / 2 ** 30) * 100) / 100 });
  });
});
