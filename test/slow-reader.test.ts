import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

// A client that stops reading must not grow the agent's memory without bound.
let proc: AgentProcess;
beforeAll(async () => {
  proc = await startAgentProcess({ config: { limits: { unsentBytes: 4 * 1024 * 1024 } } });
});
afterAll(async () => {
  await proc?.dispose();
});

const rssMiB = async (pid: number): Promise<number> => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) / 1024;
};

describe('a client that stops reading', () => {
  it('is cut off once its unread replies pass the limit; the agent stays small and serves others', async () => {
    const slow = await RawClient.connect(proc.url);
    const baseline = await rssMiB(proc.child.pid!);
    await slow.call('kv.set', { key: 'big', value: 'x'.repeat(65536) });
    const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const closed = new Promise<void>((resolve) => slow.ws.once('close', () => resolve()));
    // 3,000 replies of 64 KiB: 190 MiB the agent would otherwise hold for this one client.
    for (let i = 0; i < 3000; i++) void slow.call('kv.get', { key: 'big' });
    // Until the agent gives up on it (bounded: a loaded machine answers 3,000 requests slowly).
    let peak = 0;
    for (let i = 0; i < 400 && !/ending a session/.test(proc.stderr()); i++) {
      peak = Math.max(peak, await rssMiB(proc.child.pid!));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(proc.stderr()).toMatch(/ending a session: more than \d+ bytes unread/);
    socket.resume();
    await closed;
    // Unbounded, the agent would hold ~190 MiB of replies for this client (it grew 100 MiB in 4 s before).
    expect(peak - baseline).toBeLessThan(100);

    const other = await RawClient.connect(proc.url);
    const reply = await other.call('kv.get', { key: 'big' });
    expect(reply.ok).toBe(true);
    other.close();
  });
});
