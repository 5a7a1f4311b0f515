// The lane itself: the agent answers through the forwarded port, the guest has a real device-mapper, the
// VGs and the NFS export are there, and the agent has NFS-mounted its share with its own mount code.
import { describe, expect, it } from 'vitest';
import { guestExec, guestSh, kernelEnv } from './support/kernel.js';

const env = kernelEnv();

async function waitReady(timeoutMs = 90_000): Promise<Response> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${env.httpUrl}/readyz`, { headers: { authorization: `Bearer ${env.token}` } });
    if (res.status === 200 || Date.now() > until) return res;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

describe('kernel lane', () => {
  it('reaches the agent in the guest', async () => {
    const res = await fetch(`${env.httpUrl}/healthz`);
    expect(res.status).toBe(200);
  });

  it('runs a real kernel with device-mapper snapshot and thin targets', async () => {
    expect(await guestSh('uname -r')).toMatch(/cloud-amd64/);
    const targets = await guestSh('dmsetup targets');
    expect(targets).toMatch(/^snapshot /m);
    expect(targets).toMatch(/^thin-pool /m);
  });

  it('has the volume groups and the NFS export', async () => {
    const vgs = await guestSh('vgs --noheadings -o vg_name');
    expect(vgs).toContain('kindling-thick');
    expect(vgs).toContain('kindling-thin');
    expect(vgs).toContain('kindling-suite-thick');
    expect(vgs).toContain('kindling-suite-thin');
    const exports = await guestSh('exportfs');
    expect(exports).toContain('/export');
    expect(exports).toContain('/suite');
  });

  it('reports every backend ready and has mounted the NFS share itself', async () => {
    const res = await waitReady();
    expect(res.status, await res.text()).toBe(200);
    const mounts = await guestSh('cat /proc/mounts');
    expect(mounts).toMatch(/^127\.0\.0\.1:\/export \S+ nfs4? /m);
  });

  it('refuses the exec helper without the token', async () => {
    const res = await fetch(`${env.execUrl}/exec`, { method: 'POST', body: '{"argv":["true"]}' });
    expect(res.status).toBe(401);
    expect((await guestExec(['true'])).code).toBe(0);
  });
});
