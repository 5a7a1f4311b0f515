import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, BackendError } from '@kindling/sdk';
import { TEST_TOKEN, startAgentProcess, type AgentProcess } from './support/agent-process.js';

// What probes and humans see on the agent's HTTP side, on the same port as /rpc.
let proc: AgentProcess;
let base: string;

beforeAll(async () => {
  proc = await startAgentProcess({
    backends: (dir) => [
      { name: 'nfs', driver: 'nfs', shares: [`${dir}/share`] },
      // A VG that does not exist: the agent still starts, and says why this backend is not ready.
      { name: 'lvm', driver: 'lvm', volumeGroup: 'kindling-no-such-vg' },
    ],
  });
  base = `http://127.0.0.1:${proc.port}`;
});
afterAll(async () => {
  await proc?.dispose();
});

describe('agent HTTP', () => {
  it('healthz answers while a backend is down; readyz says which and why, with 503', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', hostId: proc.hostId });

    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { ready: boolean; backends: { name: string; ready: boolean; reason?: string }[] };
    expect(body.ready).toBe(false);
    expect(body.backends.find((b) => b.name === 'nfs')).toMatchObject({ ready: true });
    const lvm = body.backends.find((b) => b.name === 'lvm');
    expect(lvm?.ready).toBe(false);
    expect(lvm?.reason).toMatch(/kindling-no-such-vg/);
  });

  it('a backend that is not ready refuses operations with the reason; the others work', async () => {
    const agent = await Agent.connect(proc.url);
    const err = await (await agent.backend('lvm')).createVolume({ size: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).message).toMatch(/not ready.*kindling-no-such-vg/);
    const vol = await (await agent.backend('nfs')).createVolume({ size: 1 });
    expect(vol.status).toBe('available');
    await vol.delete();
    await agent.close();
  });

  it('serves backends and stats as JSON', async () => {
    const backends = (await (await fetch(`${base}/v1/backends`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).json()) as { name: string; driver: string }[];
    expect(backends.map((b) => [b.name, b.driver])).toEqual([
      ['nfs', 'nfs'],
      ['lvm', 'lvm'],
    ]);
    const stats = await fetch(`${base}/v1/backends/nfs/stats?refresh=true`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(stats.status).toBe(200);
    expect(await stats.json()).toMatchObject({ backendName: 'nfs', driver: 'nfs', storageProtocol: 'nfs' });
    expect((await fetch(`${base}/v1/backends/nope/stats`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).status).toBe(404);
    expect((await fetch(`${base}/v1/backends/lvm/stats`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).status).toBe(503);
  });

  it('exposes Prometheus metrics with kindling_ names', async () => {
    const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text();
    expect(text).toMatch(/^# TYPE kindling_ops_total counter$/m);
    expect(text).toMatch(/^kindling_ops_total\{op="volume.create",outcome="BACKEND_ERROR"\} 1$/m);
    expect(text).toMatch(/^kindling_op_duration_seconds_count\{op="volume.create"\} 2$/m);
    expect(text).toMatch(/^kindling_backend_ready\{backend="lvm"\} 0$/m);
    expect(text).toMatch(/^kindling_backend_capacity_bytes\{backend="nfs"\} \d+$/m);
  });
});
