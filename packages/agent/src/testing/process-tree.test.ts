import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { descendantsOf, killTree } from './process-tree.js';

/** Running: neither gone nor a zombie waiting to be reaped. */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

describe('killTree', () => {
  it('kills a process and everything under it, also what runs in a session of its own', async () => {
    // A child in its own session, as the agent runs its commands: a process-group kill would miss it.
    const root = spawn('bash', ['-c', 'setsid sleep 300 & sleep 300 & echo started; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
    await once(root.stdout, 'data');
    const under = await descendantsOf(root.pid!);
    expect(under).toHaveLength(2);
    const exited = once(root, 'exit');
    await killTree(root.pid!);
    await exited;
    // SIGKILL is not instant to observe: poll briefly until the kernel has torn them down.
    let left = under;
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      left = (await Promise.all(under.map(async (pid) => ((await running(pid)) ? [pid] : [])))).flat();
    }
    expect(left).toEqual([]);
  });
});
