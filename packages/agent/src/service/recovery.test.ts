import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { VolumeRecord } from '@kindling/protocol';
import { parseConfig, type AgentConfig } from '../config.js';
import { IndexStore } from '../index/store.js';
import { openServices } from '../services.js';

// A crash leaves records in a transient status; the next start settles each against real storage.
let dir: string;
let config: AgentConfig;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-recovery-'));
  config = parseConfig({ dataDir: join(dir, 'data'), backends: [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')] }] }, dir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Rewrites a record as a crash mid-operation would have left it. */
async function leaveAs(volume: VolumeRecord, status: VolumeRecord['status']): Promise<void> {
  const index = await IndexStore.open(join(config.dataDir, 'index'));
  await index.putVolume({ ...volume, status });
  await index.close();
}

describe('recovery of interrupted operations at start', () => {
  it('a create whose file exists becomes available; one whose file does not becomes error', async () => {
    let services = await openServices(config);
    const made = await services.volumes.create({ backend: 'nfs', size: 1 });
    const lost = services.volumes.draft('nfs', { size: 1 });
    await services.close();
    await leaveAs(made, 'creating');
    await leaveAs(lost, 'creating');

    services = await openServices(config);
    expect(services.volumes.get(made.id).status).toBe('available');
    expect(services.volumes.get(lost.id)).toMatchObject({ status: 'error', error: { code: 'BACKEND_ERROR' } });
    expect(services.recovery.resolved).toHaveLength(2);
    await services.close();
  });

  it('a delete that got through is forgotten; one that did not is error_deleting', async () => {
    let services = await openServices(config);
    const kept = await services.volumes.create({ backend: 'nfs', size: 1 });
    const gone = await services.volumes.create({ backend: 'nfs', size: 1 });
    await services.backends.usable('nfs').deleteVolume({ id: gone.id, size: 1, location: gone.location });
    await services.close();
    await leaveAs(kept, 'deleting');
    await leaveAs(gone, 'deleting');

    services = await openServices(config);
    expect(services.volumes.get(kept.id).status).toBe('error_deleting');
    expect(() => services.volumes.get(gone.id)).toThrow(/no volume/);
    expect((await services.volumes.list({ backend: 'nfs' })).volumes.map((v) => v.id)).toEqual([kept.id]);
    await services.close();
  });

  it('an interrupted extend settles back to available', async () => {
    let services = await openServices(config);
    const volume = await services.volumes.create({ backend: 'nfs', size: 1 });
    await services.close();
    await leaveAs(volume, 'extending');
    services = await openServices(config);
    expect(services.volumes.get(volume.id).status).toBe('available');
    await services.close();
  });
});
