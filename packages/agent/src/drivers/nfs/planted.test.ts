import { watch, type FSWatcher } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KindlingError, UUID_PATTERN } from '@kindling/protocol';
import { run, type Runner } from '../../exec/run.js';
import { nfsConfig, newSnapshot, newVolume, TEST_HOST } from '../../testing/nfs-driver.js';
import type { VolumeRef } from '../driver.js';
import { withStorageErrors } from '../storage-errors.js';
import { NfsDriver } from './driver.js';

// Issue 18, finding 1: a share writer plants symlinks to a host file WHILE an operation runs, at every
// name it can derive from what it sees on the share (a clone's new id in `.info`, an overlay's
// `.revert`), and swaps every file the agent makes for such a link. The host file never changes; the
// call succeeds or fails with a typed error.

const MiB = 1024 * 1024;
const TMP_SNAP = new RegExp(`tmp-snap-(?:[0-9a-f]+-)?(${UUID_PATTERN})`, 'i');

/**
 * The attacker: sweeps the share (on every change it is told of, and before every command the agent
 * runs, so no step goes unwatched) and plants a link to `victim` at every name it can derive.
 */
class Planter {
  private readonly seen = new Set<string>();
  private watcher: FSWatcher | null = null;
  planted = 0;

  constructor(
    private readonly share: string,
    private readonly victim: string,
    /** Also replace each new file the agent makes with a link (the agent's own names). */
    private readonly swap: boolean,
  ) {}

  async start(): Promise<void> {
    // Records are read at the first sweep: they name what the attacker can derive before anything changes.
    for (const name of await readdir(this.share)) if (!name.endsWith('.info')) this.seen.add(name);
    this.watcher = watch(this.share, () => void this.sweep().catch(() => undefined));
  }

  stop(): void {
    this.watcher?.close();
  }

  /** A runner that lets the attacker act before each command. */
  runner(): Runner {
    return async (argv, options) => {
      await this.sweep();
      return run(argv, options);
    };
  }

  private async plant(name: string): Promise<void> {
    const path = join(this.share, name);
    try {
      await symlink(this.victim, path);
      this.planted++;
    } catch {
      // Already there (the agent's, or planted before).
    }
  }

  async sweep(): Promise<void> {
    for (const name of await readdir(this.share)) {
      if (this.seen.has(name)) continue;
      this.seen.add(name);
      const path = join(this.share, name);
      const st = await lstat(path).catch(() => null);
      if (!st || st.isSymbolicLink()) continue;
      const newId = TMP_SNAP.exec(name)?.[1];
      if (newId) for (const derived of [`volume-${newId}.part`, `volume-${newId}`]) await this.plant(derived);
      if (name.endsWith('.info')) {
        const info = JSON.parse(await readFile(path, 'utf8').catch(() => '{}')) as Record<string, string>;
        for (const [key, file] of Object.entries(info)) {
          await this.plant(`${file}.revert`);
          const id = TMP_SNAP.exec(key)?.[1];
          if (id) await this.plant(`volume-${id}.part`);
        }
        continue;
      }
      if (/^volume-[^.]+\.[^.]+$/.test(name)) await this.plant(`${name}.revert`);
      if (this.swap && !/^volume-[^.]+$/.test(name)) {
        await rm(path, { force: true });
        await this.plant(name);
      }
    }
  }
}

let share: string;
let host: string;
/** A host file outside the share: 1 MiB of 0x5a, never to change. */
let victim: string;

beforeEach(async () => {
  share = await mkdtemp(join(tmpdir(), 'kindling-planted-'));
  host = await mkdtemp(join(tmpdir(), 'kindling-victim-'));
  victim = join(host, 'victim');
  await writeFile(victim, Buffer.alloc(MiB, 0x5a));
});
afterEach(async () => {
  await rm(share, { recursive: true, force: true });
  await rm(host, { recursive: true, force: true });
});

describe.each([false, true])('NFS driver with links planted during each step (swap new files: %s)', (swap) => {
  let planter: Planter;
  afterEach(() => planter?.stop());

  const driverFor = (format: 'qcow2' | 'raw', runner: Runner = run) =>
    new NfsDriver(nfsConfig(share, { format }), { run: runner, hostId: TEST_HOST });
  const newRef = (size = 2): VolumeRef => ({ id: randomUUID(), size, location: {} });

  /** Runs `op` under attack; the victim is unchanged and the call succeeded or failed typed. */
  async function underAttack(op: (driver: NfsDriver) => Promise<unknown>, format: 'qcow2' | 'raw'): Promise<void> {
    // As the agent runs it: OS errors typed as storage failures.
    const typed = (runner: Runner) => withStorageErrors(driverFor(format, runner)) as NfsDriver;
    const before = await stat(victim);
    planter = new Planter(share, victim, swap);
    await planter.start();
    const outcome = await op(typed(planter.runner())).then(
      () => null,
      (err: unknown) => err,
    );
    await planter.sweep();
    planter.stop();
    if (outcome !== null) expect(outcome, String(outcome)).toBeInstanceOf(KindlingError);
    const after = await stat(victim);
    expect({ size: after.size, mtimeMs: after.mtimeMs }).toEqual({ size: before.size, mtimeMs: before.mtimeMs });
    expect((await readFile(victim)).equals(Buffer.alloc(MiB, 0x5a))).toBe(true);
  }

  for (const format of ['qcow2', 'raw'] as const) {
    it(`${format}: create`, async () => {
      await underAttack((d) => d.createVolume(newRef()), format);
    });

    it(`${format}: clone`, async () => {
      const src = await newVolume(driverFor(format));
      await underAttack((d) => d.cloneVolume(newRef(), src), format);
      expect(planter.planted).toBeGreaterThan(0);
    });

    it(`${format}: volume from snapshot`, async () => {
      const driver = driverFor(format);
      const src = await newVolume(driver);
      const snap = await newSnapshot(driver, src);
      await underAttack((d) => d.createVolumeFromSnapshot(newRef(), snap, src), format);
    });

    it(`${format}: revert`, async () => {
      const driver = driverFor(format);
      const vol = await newVolume(driver);
      const snap = await newSnapshot(driver, vol);
      await underAttack((d) => d.revertToSnapshot(vol, snap), format);
      expect(planter.planted).toBeGreaterThan(0);
    });

    it(`${format}: snapshot`, async () => {
      const vol = await newVolume(driverFor(format));
      await underAttack((d) => newSnapshot(d, vol), format);
    });
  }
});

// The same attacker against files the agent only opens: a chain file swapped for a link between the
// driver's checks and the command that writes it (resize, commit).
describe('NFS driver with a chain file swapped for a link right before its command', () => {
  /** A driver whose `command` runs only after `name` on the share was replaced by a link to the victim. */
  const swapping = (command: string, name: () => string) =>
    withStorageErrors(
      new NfsDriver(nfsConfig(share, { format: 'raw' }), {
        hostId: TEST_HOST,
        run: async (argv, options) => {
          if (argv[1] === command) {
            await rm(join(share, name()), { force: true });
            await symlink(victim, join(share, name()));
          }
          return run(argv, options);
        },
      }),
    ) as NfsDriver;

  async function victimUntouched(call: Promise<unknown>): Promise<void> {
    const before = await stat(victim);
    const outcome = await call.then(
      () => null,
      (err: unknown) => err,
    );
    if (outcome !== null) expect(outcome, String(outcome)).toBeInstanceOf(KindlingError);
    const after = await stat(victim);
    expect({ size: after.size, mtimeMs: after.mtimeMs }).toEqual({ size: before.size, mtimeMs: before.mtimeMs });
    expect((await readFile(victim)).equals(Buffer.alloc(MiB, 0x5a))).toBe(true);
  }

  it('extend resizes the volume, never the file a link names', async () => {
    const vol = await newVolume(driverOn(share));
    await victimUntouched(swapping('resize', () => `volume-${vol.id}`).extendVolume(vol, 2));
  });

  it('snapshot delete commits into the volume, never into the file a link names', async () => {
    const driver = driverOn(share);
    const vol = await newVolume(driver);
    const snap = await newSnapshot(driver, vol);
    await victimUntouched(swapping('commit', () => `volume-${vol.id}`).deleteSnapshot(snap, vol));
  });
});

const driverOn = (dir: string) => new NfsDriver(nfsConfig(dir, { format: 'raw' }), { run, hostId: TEST_HOST });
