import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ownerTag, partFile, requires } from '@kindling/agent/testing';
import { immutableUnavailable, whileImmutable } from './support/cinderlib.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

// Recovery reads all of storage before serving only when an operation was in flight (or a cleanup
// failed, or may have): a start with tens of thousands of volumes should not wait for that read. After
// a kill with nothing in flight, leftovers are looked for after ready; after a clean stop, not at all.
const itFails = requires('this failure scenario (an immutable file, chattr +i)', immutableUnavailable(), it, it.skip);

let proc: AgentProcess | undefined;
afterEach(async () => {
  await proc?.dispose();
  proc = undefined;
});

/** What an interrupted create of this agent's leaves: recovery removes it whenever it scans. */
const partial = (p: AgentProcess) => join(p.dir, 'share', partFile(randomUUID(), ownerTag(p.hostId, 'nfs')));

describe('start after a stop', () => {
  it('skips the storage scan after a clean stop, and runs it after ready after a kill', async () => {
    proc = await startAgentProcess();

    await proc.stop();
    const afterStop = partial(proc);
    await writeFile(afterStop, '');
    proc = await proc.restart();
    expect(existsSync(afterStop)).toBe(true);

    await proc.kill();
    const afterKill = partial(proc);
    await writeFile(afterKill, '');
    proc = await proc.restart();
    await proc.logged(new RegExp(`removed a leftover partial-volume .*${afterKill.split('/').pop()}`));
    expect(existsSync(afterKill)).toBe(false);
    expect(existsSync(afterStop)).toBe(false);
  });

  itFails('reports a leftover it could not remove again at the start after a clean stop, and removes it once it can', async () => {
    proc = await startAgentProcess();
    await proc.kill();
    const leftover = partial(proc);
    await writeFile(leftover, '');
    const share = join(proc.dir, 'share');
    await whileImmutable(share, async () => {
      proc = await proc!.restart();
      await proc.logged(/could not remove a leftover partial-volume/);
      proc = await proc.restart();
      expect(proc.stderr()).toMatch(/could not remove a leftover partial-volume/);
      const ready = (await (await fetch(`http://127.0.0.1:${proc.port}/readyz`)).json()) as { backends: { warnings: string[] }[] };
      // The kill may also have left a readiness probe's file: name the leftover, not a count.
      expect(ready.backends[0]!.warnings.join('\n')).toContain(leftover);
    });
    proc = await proc.restart();
    expect(existsSync(leftover)).toBe(false);
  });

  itFails('scans at the start after a clean stop when an operation failed in a way that may have left a leftover', async () => {
    proc = await startAgentProcess();
    const client = await RawClient.connect(proc.url);
    const created = await client.call('volume.create', { backend: 'nfs', size: 1 });
    const volume = (created.ok ? created.result : null) as { id: string; location: { activeFile: string } };
    // Standing for what the failed operation's own cleanup could not remove.
    const leftover = partial(proc);
    await writeFile(leftover, '');
    const file = join(proc.dir, 'share', volume.location.activeFile);
    expect(await whileImmutable(file, () => client.call('volume.extend', { id: volume.id, size: 2 }))).toMatchObject({ ok: false });
    client.close();

    proc = await proc.restart();
    expect(existsSync(leftover)).toBe(false);
  });
});
