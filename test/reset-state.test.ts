import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, ConflictError, UnauthorizedError, type Backend } from '@kindling/sdk';
import { runCli } from '../packages/cli/src/testing/run-cli.js';
import { startAgentProcess, TEST_TOKEN, type AgentProcess } from './support/agent-process.js';

// `vol.resetState()`: an operator settles a volume left in error against storage, over the wire.
const READ_TOKEN = 'reset-state-read-token-0123456789';
let proc: AgentProcess;
let agent: Agent;
let nfs: Backend;

beforeAll(async () => {
  proc = await startAgentProcess({ config: { readTokens: [READ_TOKEN] } });
  agent = await Agent.connect(proc.url, { token: TEST_TOKEN });
  nfs = await agent.backend('nfs');
});
afterAll(async () => {
  await agent?.close();
  await proc?.dispose();
});

describe('vol.resetState()', () => {
  it('brings a volume left in error back once storage holds it whole, refuses while it does not, and is for admins only', async () => {
    const vol = await nfs.createVolume({ size: 1 });
    const file = join(proc.dir, 'share', `volume-${vol.id}`);
    // Away from the share while an extend runs: the extend fails and storage cannot settle the record.
    await rename(file, `${file}.away`);
    await expect(vol.extend(2)).rejects.toThrow();
    await vol.refresh();
    expect(vol.status).toBe('error');
    await expect(vol.resetState()).rejects.toBeInstanceOf(ConflictError);

    await rename(`${file}.away`, file);
    const reader = await Agent.connect(proc.url, { token: READ_TOKEN });
    try {
      const [seen] = await (await reader.backend('nfs')).volumesFiltered({ volumeId: vol.id });
      await expect(seen!.resetState()).rejects.toBeInstanceOf(UnauthorizedError);
    } finally {
      await reader.close();
    }
    expect(await vol.resetState()).toBe(vol);
    expect(vol).toMatchObject({ status: 'available', size: 1, error: null });
    await vol.delete();
  });

  it('is `kindling volume reset-state` at a terminal: the settled volume, or CONFLICT (exit 4) while storage does not hold it', async () => {
    const kindling = (token: string, ...args: string[]) => runCli(args, { env: { KINDLING_URL: proc.url, KINDLING_TOKEN: token } });
    const vol = await nfs.createVolume({ size: 1, name: 'stuck' });
    const file = join(proc.dir, 'share', `volume-${vol.id}`);
    await rename(file, `${file}.away`);
    await expect(vol.extend(2)).rejects.toThrow();
    const refused = await kindling(TEST_TOKEN, 'volume', 'reset-state', 'stuck');
    expect({ code: refused.code, stderr: refused.stderr }).toMatchObject({ code: 4, stderr: expect.stringMatching(/^error: CONFLICT: /) });

    await rename(`${file}.away`, file);
    expect((await kindling(READ_TOKEN, 'volume', 'reset-state', 'stuck')).code).toBe(6);
    const done = await kindling(TEST_TOKEN, 'volume', 'reset-state', 'stuck', '--json');
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ id: vol.id, status: 'available', size: 1 });
    await vol.refresh();
    await vol.delete();
  });
});
