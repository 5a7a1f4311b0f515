import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCrashShim, type CrashShim } from './crash-shim.js';

// The shim is spawned as the agent spawns commands: by name, with a PATH whose first folder is the shim's.

let shim: CrashShim;
let dir: string;
beforeAll(async () => {
  shim = await createCrashShim(['touch']);
  dir = await mkdtemp(join(tmpdir(), 'kindling-shim-test-'));
});
afterAll(async () => {
  await shim.dispose();
  await rm(dir, { recursive: true, force: true });
});

function runShimmed(argv: string[]): { pid: number; done: Promise<{ code: number | null; stdout: string }> } {
  const [file, ...args] = argv;
  const child = spawn(file!, args, { env: { PATH: `${shim.dir}:${process.env.PATH}` }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  return { pid: child.pid!, done: new Promise((res) => child.once('close', (code) => res({ code, stdout }))) };
}

describe('crash shim', () => {
  it('passes unmatched calls through to the real command, arguments as given (no shell)', async () => {
    const file = join(dir, 'a $(touch pwned) `x` ; b');
    const { done } = runShimmed(['touch', file]);
    expect((await done).code).toBe(0);
    expect(existsSync(file)).toBe(true);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  });

  it('stalls the n-th matching call before the command: the spawned process itself sleeps, and the command never ran', async () => {
    const armed = await shim.arm({ command: 'touch', args: ['-m', '-a'], nth: 2, at: 'before' });
    expect((await runShimmed(['touch', join(dir, 'unmatched')]).done).code).toBe(0);
    expect((await runShimmed(['touch', '-a', '-m', join(dir, 'first')]).done).code).toBe(0);
    const second = runShimmed(['touch', '-a', '-m', join(dir, 'second')]);
    const stall = await armed.reached();
    expect(stall).toEqual({ pid: second.pid, exitCode: null, argv: ['touch', '-a', '-m', join(dir, 'second')] });
    expect(await shim.alive(stall)).toBe(true);
    expect(existsSync(join(dir, 'second'))).toBe(false);
    await shim.release();
    expect(await shim.alive(stall)).toBe(false);
    expect((await second.done).code).not.toBe(0);
    // Fired once: the next matching call runs.
    expect((await runShimmed(['touch', '-a', '-m', join(dir, 'third')]).done).code).toBe(0);
    expect(existsSync(join(dir, 'third'))).toBe(true);
  });

  it('stalls after the command ran to its end, its output already written', async () => {
    const file = join(dir, 'after');
    const armed = await shim.arm({ command: 'touch', args: [file], at: 'after' });
    const run = runShimmed(['touch', file]);
    const stall = await armed.reached();
    expect({ exitCode: stall.exitCode, pid: stall.pid, made: existsSync(file) }).toEqual({ exitCode: 0, pid: run.pid, made: true });
    await shim.release();
    expect(await shim.alive(stall)).toBe(false);
  });
});
