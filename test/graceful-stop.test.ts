import { afterAll, describe, expect, it } from 'vitest';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

let proc: AgentProcess | undefined;
afterAll(async () => {
  await proc?.dispose();
});

describe('stopping the agent', () => {
  it('lets an operation under way finish its storage work and index write before the index closes', async () => {
    proc = await startAgentProcess();
    const client = await RawClient.connect(proc.url);
    void client.call('volume.create', { backend: 'nfs', size: 1, name: 'in-flight' });
    // The `creating` push says the record is written and the driver is running.
    const started = Date.now();
    while (!client.events.some((e) => e.event === 'volume' && e.resource.status === 'creating')) {
      if (Date.now() - started > 5000) throw new Error('no creating push');
      await new Promise((r) => setTimeout(r, 1));
    }
    await proc.stop();
    // A clean exit: the stop waited for the create instead of dying under it.
    expect({ code: proc.child.exitCode, stderr: proc.stderr() }).toEqual({ code: 0, stderr: '' });

    proc = await proc.restart();
    // Nothing was left for recovery to settle: the create finished before the stop closed the index.
    expect(proc.stderr()).not.toMatch(/recovered/);
    const after = await RawClient.connect(proc.url);
    const reply = await after.call('volume.list', { name: 'in-flight' });
    expect(reply.ok && (reply.result as { volumes: { status: string }[] }).volumes.map((v) => v.status)).toEqual(['available']);
    after.close();
  });
});
