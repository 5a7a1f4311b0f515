import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, TimeoutError } from '@kindling/protocol';
import type { LvmBackendConfig } from '../../config.js';
import { run, type Runner } from '../../exec/run.js';
import { LvmCommands } from './commands.js';
import { LvmDriver } from './driver.js';
import { DocSplitter, shellLine } from './shell.js';
import { createLoopVg, loopVgUnavailable, type LoopVg } from '../../testing/loop-vg.js';
import { descendantsOf } from '../../testing/process-tree.js';
import { requires } from '../../testing/requirement.js';

const BUILT_COMMANDS = resolve(import.meta.dirname, '../../../dist/drivers/lvm/commands.js');
const BUILT_RUN = resolve(import.meta.dirname, '../../../dist/exec/run.js');

const suite = requires('the lvm shell tests (a loop VG)', loopVgUnavailable(), describe, describe.skip);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The `lvm` processes under `pid` (a shell is a process named lvm). */
async function lvmShellsOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const child of await descendantsOf(pid)) {
    if ((await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '')).trim() === 'lvm') found.push(child);
  }
  return found;
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return !alive(pid);
}

describe('lvm shell lines and documents', () => {
  it('quotes what lvm2 would split, and leaves to a process what it cannot carry', () => {
    expect(shellLine(['lvremove', '--config', 'activation { retry_deactivation = 1 }', '-f', 'vg/lv'])).toBe(
      "lvremove --config 'activation { retry_deactivation = 1 }' -f vg/lv",
    );
    expect(shellLine(['lvchange', '--addtag', '#tag', 'vg/lv'])).toBe("lvchange --addtag '#tag' vg/lv");
    expect(shellLine(['lvs', `it's "both"`])).toBeNull();
    expect(shellLine(['lvs', 'a\nlvremove -f vg/lv'])).toBeNull();
    expect(shellLine(['lvs', ''])).toBeNull();
  });

  it('cuts documents at their closing brace only, whatever the strings hold and however the chunks fall', () => {
    const text = '{"log":[{"log_message":"a } \\" {"}]}\n  {"report":[{"lv":[]}],"log":[]}';
    const splitter = new DocSplitter();
    const docs = [...text].flatMap((c) => splitter.push(c));
    expect(docs.map((d) => JSON.parse(d))).toEqual([{ log: [{ log_message: 'a } " {' }] }, { report: [{ lv: [] }], log: [] }]);
  });
});

suite('the lvm shell on real lvm2 (loop VG)', () => {
  let fx: LoopVg;
  const spawned: string[][] = [];
  const recording: Runner = (argv, options) => {
    spawned.push([...argv]);
    return run(argv, options);
  };

  const config = (over: Partial<LvmBackendConfig> = {}): LvmBackendConfig => ({
    name: 'lvm',
    driver: 'lvm',
    volumeGroup: fx.vg,
    lvmType: 'default',
    lvmConfFile: fx.lvmConfFile,
    volumeClear: 'none',
    volumeClearMinMiBps: 8,
    reservedPercentage: 0,
    maxOverSubscriptionRatio: 20,
    targetPort: 3260,
    ...over,
  });

  const lvNames = async (): Promise<string[]> => {
    const { stdout } = await fx.lvm(['lvs', '--reportformat', 'json', '-o', 'lv_name', fx.vg]);
    return (JSON.parse(stdout) as { report: { lv: { lv_name: string }[] }[] }).report[0]!.lv.map((l) => l.lv_name).sort();
  };

  beforeAll(async () => {
    fx = await createLoopVg({ sizeMiB: 4096 });
  });

  afterAll(async () => {
    await fx?.destroy();
  });

  it('runs the driver by default through one lvm process, no process per command, and storage changes as asked', async () => {
    spawned.length = 0;
    const driver = new LvmDriver({ ...config(), lvmShell: undefined }, { run: recording, hostId: 'host-a' });
    await driver.start();
    const [a, b] = [randomUUID(), randomUUID()];
    await driver.createVolume({ id: a, size: 1, location: {} });
    await driver.createVolume({ id: b, size: 1, location: {} });
    await driver.deleteVolume({ id: a, size: 1, location: {} });
    expect(await lvNames()).toEqual([`volume-${b}`]);
    expect((await driver.stats(true)).freeCapacityGb).toBeCloseTo(2.99, 1);
    expect(spawned).toEqual([]);
    await driver.deleteVolume({ id: b, size: 1, location: {} });
    expect(await lvNames()).toEqual([]);
  });

  it('with lvmShell false, runs each lvm2 command as its own process', async () => {
    spawned.length = 0;
    const driver = new LvmDriver(config({ lvmShell: false }), { run: recording, hostId: 'host-a' });
    await driver.start();
    const id = randomUUID();
    await driver.createVolume({ id, size: 1, location: {} });
    await driver.deleteVolume({ id, size: 1, location: {} });
    expect(spawned.map((argv) => argv[0])).toEqual(['lvm', 'lvcreate', 'lvremove']);
  });

  it("activates as a process of its own, never in the shell (lvm2 forks a merge's poller from what activates an origin)", async () => {
    spawned.length = 0;
    const lvm = new LvmCommands(recording, fx.vg, fx.lvmConfFile, true);
    await lvm.createLinear('active', 1, []);
    await lvm.activate('active', true);
    await lvm.remove('active');
    expect(spawned).toEqual([['lvchange', '-a', 'y', '--yes', '-K', `${fx.vg}/active`]]);
  });

  it("a failed command fails as the process would: lvm2's exit code and its words", async () => {
    const lvm = new LvmCommands(run, fx.vg, fx.lvmConfFile, true);
    const err = await lvm.remove('volume-missing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).details).toMatchObject({ exitCode: 5, command: expect.arrayContaining(['lvremove']) });
    expect((err as BackendError).details.stderrTail).toMatch(/Failed to find logical volume/);
    // The shell lives on after a failure and answers the next command.
    expect(JSON.parse((await lvm.fullReport()).stdout).report[0].vg[0].vg_name).toBe(fx.vg);
  });

  it('a shell that died is started again at the next command', async () => {
    const lvm = new LvmCommands(run, fx.vg, fx.lvmConfFile, true);
    await lvm.createLinear('first', 1, []);
    const pid = lvm.shell!.pid!;
    process.kill(pid, 'SIGKILL');
    expect(await gone(pid)).toBe(true);
    await lvm.createLinear('second', 1, []);
    expect(lvm.shell!.pid).not.toBe(pid);
    expect(await lvNames()).toEqual(['first', 'second']);
    await lvm.remove('first');
    await lvm.remove('second');
  });

  it('a command past its timeout is killed with its shell, and the next one gets a new shell', async () => {
    const lvm = new LvmCommands(run, fx.vg, fx.lvmConfFile, true);
    await lvm.fullReport();
    const pid = lvm.shell!.pid!;
    const err = await lvm.shell!.run(['lvs', fx.vg], { timeoutMs: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    // At once, not after the old shell's exit: the next command neither waits for it nor hears from it.
    expect(JSON.parse((await lvm.fullReport()).stdout).report[0].vg[0].vg_name).toBe(fx.vg);
    expect(lvm.shell!.pid).not.toBe(pid);
    expect(await gone(pid)).toBe(true);
  });

  it("the driver's close (the agent's stop) ends its shell; a command after it runs as a process", async () => {
    spawned.length = 0;
    const before = await lvmShellsOf(process.pid);
    const driver = new LvmDriver({ ...config(), lvmShell: undefined }, { run: recording, hostId: 'host-a' });
    await driver.start();
    const mine = (await lvmShellsOf(process.pid)).filter((pid) => !before.includes(pid));
    expect(mine).toHaveLength(1);
    driver.close();
    expect(await gone(mine[0]!)).toBe(true);
    await driver.stats(true);
    expect(spawned.map((argv) => argv[0])).toEqual(['lvm']);
  });

  it('the shell dies with the process that started it, killed with SIGKILL', async () => {
    // The built driver in a node process of its own, as the agent runs it: one command, then its shell's pid.
    const script = [
      `const { LvmCommands } = await import(${JSON.stringify(pathToFileURL(BUILT_COMMANDS).href)});`,
      `const { run } = await import(${JSON.stringify(pathToFileURL(BUILT_RUN).href)});`,
      `const lvm = new LvmCommands(run, ${JSON.stringify(fx.vg)}, ${JSON.stringify(fx.lvmConfFile)}, true);`,
      'await lvm.fullReport();',
      'console.log(lvm.shell.pid);',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const owner = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await once(createInterface({ input: owner.stdout! }), 'line')) as [string];
    const shell = Number(line);
    expect(alive(shell)).toBe(true);
    owner.kill('SIGKILL');
    expect(await gone(shell)).toBe(true);
  });
});
