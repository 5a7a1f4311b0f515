import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

/**
 * A `qemu-img` first on the agent's PATH that, while the flag file exists, turns `qemu-img create`
 * into a command that never ends (standing for a long copy): `sleep` with a number unique to the
 * test, so a scan of /proc finds it and nothing else.
 */
async function stallingQemuImg(dir: string, { fork = false } = {}) {
  const bin = join(dir, 'bin');
  const flag = join(dir, 'stall');
  const marker = `3600.${randomInt(1e9)}`;
  await mkdir(bin);
  const shim = join(bin, 'qemu-img');
  await writeFile(
    shim,
    // Forking, the sleep stands for a helper the command starts (`mount` starting `mount.nfs`).
    `#!/bin/sh\nif [ "$1" = create ] && [ -e ${flag} ]; then ${fork ? `sleep ${marker} & wait` : `exec sleep ${marker}`}; fi\nexec /usr/bin/qemu-img "$@"\n`,
  );
  await chmod(shim, 0o755);
  return { bin, flag, marker };
}

/** Live (not zombie) processes whose command line holds `marker`. */
async function survivors(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      if (!cmdline.includes(marker)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
      if (state !== 'Z' && state !== 'X') found.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return found;
}

/** Polls until `check` holds or a generous deadline passes, then returns its last value. */
async function eventually<T>(read: () => Promise<T>, check: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 15_000;
  let value = await read();
  while (!check(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    value = await read();
  }
  return value;
}

/** The agent process inherits this process's environment at spawn. */
async function withEnv<T>(vars: Record<string, string>, start: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await start();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Starts a create whose `qemu-img create` stalls, and waits until that command runs. */
async function stallCreate(proc: AgentProcess, shim: { flag: string; marker: string }) {
  await writeFile(shim.flag, '');
  const client = await RawClient.connect(proc.url);
  void client.call('volume.create', { backend: 'nfs', size: 1, name: 'stalled' });
  expect(await eventually(() => survivors(shim.marker), (p) => p.length > 0)).toHaveLength(1);
  await rm(shim.flag);
  return client;
}

let proc: AgentProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  await proc?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
  proc = dir = undefined;
});

describe('no command outlives the agent', () => {
  it('ends the commands of an agent killed with SIGKILL', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-children-'));
    const shim = await stallingQemuImg(dir);
    proc = await withEnv({ PATH: `${shim.bin}:${process.env.PATH}` }, () => startAgentProcess());
    const client = await stallCreate(proc, shim);
    await proc.kill();
    client.close();
    expect(await eventually(() => survivors(shim.marker), (p) => p.length === 0)).toEqual([]);
  });

  it('ends what the commands of an agent killed with SIGKILL forked', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-children-'));
    const shim = await stallingQemuImg(dir, { fork: true });
    proc = await withEnv({ PATH: `${shim.bin}:${process.env.PATH}` }, () => startAgentProcess());
    const client = await stallCreate(proc, shim);
    await proc.kill();
    client.close();
    expect(await eventually(() => survivors(shim.marker), (p) => p.length === 0)).toEqual([]);
  });

  it('ends a command started in the instant the agent was SIGKILLed, before anything else of the agent ran', async () => {
    const marker = `3600.${randomInt(1e9)}`;
    const script = join(import.meta.dirname, 'support/die-after-spawn.mjs');
    // A loaded machine, made certain: any wrapper a launch might go through (setpriv and timeout did) is
    // slow to start, so a guarantee that only begins once a wrapper has run (a parent-death signal set by
    // it) begins after the agent is gone.
    dir = await mkdtemp(join(tmpdir(), 'kindling-children-'));
    const bin = join(dir, 'bin');
    await mkdir(bin);
    for (const wrapper of ['setpriv', 'timeout']) {
      await writeFile(join(bin, wrapper), `#!/bin/sh\nsleep 0.5\nexec /usr/bin/${wrapper} "$@"\n`);
      await chmod(join(bin, wrapper), 0o755);
    }
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const agent = spawn(process.execPath, [script, marker], { stdio: ['ignore', 'pipe', 'inherit'], env });
    let out = '';
    agent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const [, signal] = (await once(agent, 'exit')) as [number | null, string | null];
    expect(signal).toBe('SIGKILL');
    // It did start the command (its last spawn), and that command does not outlive it.
    expect((JSON.parse(out) as number[]).length).toBeGreaterThan(0);
    expect(await eventually(() => survivors(marker), (p) => p.length === 0)).toEqual([]);
  });

  it('on SIGTERM, ends a command that outlasts the drain, records the failure, then closes the index', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-children-'));
    const shim = await stallingQemuImg(dir);
    proc = await withEnv({ PATH: `${shim.bin}:${process.env.PATH}`, KINDLING_DRAIN_MS: '300' }, () => startAgentProcess());
    const client = await stallCreate(proc, shim);
    await proc.stop();
    client.close();
    expect(proc.child.exitCode).toBe(0);
    expect(await eventually(() => survivors(shim.marker), (p) => p.length === 0)).toEqual([]);

    proc = await proc.restart();
    // The create failed through its usual path before the index closed: recovery had nothing to settle.
    expect(proc.stderr()).not.toMatch(/recovered/);
    const after = await RawClient.connect(proc.url);
    const reply = await after.call('volume.list', { name: 'stalled' });
    after.close();
    const volumes = reply.ok ? (reply.result as { volumes: { status: string; error: { message: string } | null }[] }).volumes : [];
    expect(volumes.map((v) => ({ status: v.status, error: v.error?.message }))).toEqual([
      { status: 'error', error: expect.stringMatching(/the agent is stopping/) },
    ]);
  });
});
