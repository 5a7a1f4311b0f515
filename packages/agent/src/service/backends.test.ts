import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Driver, Readiness } from '../drivers/driver.js';
import { IndexStore } from '../index/store.js';
import { Backends } from './backends.js';
import { EventBus } from './events.js';

let dir: string;
let index: IndexStore;
let backends: Backends | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-backends-'));
  index = await IndexStore.open(join(dir, 'index'));
});
afterEach(async () => {
  backends?.close();
  await index.close();
  await rm(dir, { recursive: true, force: true });
});

const timing = { firstRetryMs: 20, maxRetryMs: 80, readinessTtlMs: 200, readinessTimeoutMs: 100, refreshMs: 60_000 };

/** A driver whose start and readiness the test scripts. */
function scripted(name: string, start: () => Promise<void>, readiness: () => Promise<Readiness> = async () => ({ ready: true })) {
  return { name, driver: 'nfs', start, readiness } as unknown as Driver;
}

const until = async (check: () => boolean, ms = 3000) => {
  for (const end = Date.now() + ms; !check(); ) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('backends', () => {
  it('a backend whose storage is missing at start is tried again and becomes usable when it comes', async () => {
    let storageThere = false;
    let attempts = 0;
    const driver = scripted('late', async () => {
      attempts++;
      if (!storageThere) throw new Error('volume group vg-late not found');
    });
    backends = new Backends([driver], index, new EventBus(), timing);
    await backends.start();
    expect(() => backends!.usable('late')).toThrow(/not ready: volume group vg-late not found/);
    expect((await backends.readiness())[0]).toMatchObject({ ready: false, reason: 'volume group vg-late not found' });
    await until(() => attempts >= 3);
    storageThere = true;
    await until(() => backends!.drivers().length === 1);
    expect(backends.usable('late')).toBe(driver);
    expect((await backends.readiness())[0]).toMatchObject({ ready: true });
  });

  it('answers readiness from a cached check, and a check that hangs as not ready within the timeout', async () => {
    let checks = 0;
    let hang = false;
    const driver = scripted('share', async () => undefined, async () => {
      checks++;
      if (hang) await new Promise(() => undefined);
      return { ready: true };
    });
    backends = new Backends([driver], index, new EventBus(), timing);
    await backends.start();
    for (let i = 0; i < 5; i++) expect((await backends.readiness())[0]?.ready).toBe(true);
    expect(checks).toBe(1);

    hang = true;
    await new Promise((r) => setTimeout(r, timing.readinessTtlMs + 10));
    const [late] = await backends.readiness();
    expect(late).toMatchObject({ ready: false, reason: expect.stringMatching(/did not answer in 100 ms/) });
    // The hung check is not started again on every request: one thread stays pinned, not all.
    await backends.readiness();
    expect(checks).toBe(2);
  });
});
