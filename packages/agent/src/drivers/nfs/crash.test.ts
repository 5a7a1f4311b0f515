import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError } from '@kindling/protocol';
import type { NfsBackendConfig } from '../../config.js';
import { run, type Runner } from '../../exec/run.js';
import { nfsConfig, newVolume, newSnapshot, TEST_HOST, TEST_OWNER } from '../../testing/nfs-driver.js';
import type { Leftover, ScanResult, SnapshotRef, VolumeRef } from '../driver.js';
import { NfsDriver } from './driver.js';
import { partFile } from './names.js';

// A crash at every step of every multi-step operation, on real images: the operation is stopped
// right after its n-th command (the command ran, the agent never went on), then a fresh driver (as
// after a restart) scans, removes the leftovers, and the interrupted operation is retried.

const write = (path: string, format: string, pattern: string, offset = '0') =>
  run(['qemu-io', '-f', format, '-c', `write -P ${pattern} ${offset} 64k`, path]);
const reads = (path: string, format: string, pattern: string, offset = '0'): Promise<boolean> =>
  run(['qemu-io', '-f', format, '-c', `read -P ${pattern} ${offset} 64k`, path]).then(
    () => true,
    () => false,
  );

/** A runner that runs commands as they come, and never returns from the n-th (n = 0: never stops). */
function stopAfter(n: number) {
  let count = 0;
  let stopped!: () => void;
  const reached = new Promise<void>((resolve) => (stopped = resolve));
  const runner: Runner = async (argv, options) => {
    count++;
    const result = await run(argv, options);
    if (count !== n) return result;
    stopped();
    return new Promise(() => {});
  };
  return { runner, reached, commands: () => count };
}

describe.each(['qcow2', 'raw'] as const)('NFS crash recovery (%s)', (format) => {
  let share: string;

  const makeDriver = (runner: Runner = run, over: Partial<NfsBackendConfig> = {}) =>
    new NfsDriver(nfsConfig(share, { format, ...over }), { run: runner, hostId: TEST_HOST });

  const path = (file: unknown) => join(share, String(file));
  const activeOf = async (volume: VolumeRef) =>
    path((JSON.parse(await readFile(path(`volume-${volume.id}.info`), 'utf8')) as { active: string }).active);
  const ids = (scan: ScanResult) => scan.volumes.map((v) => v.id).sort();
  const kinds = (leftovers: Leftover[]) => leftovers.map((l) => `${l.kind}:${l.id}`).sort();

  /**
   * Runs `op` on a crashing driver for each n from 1 to the number of commands it runs, on a fresh
   * share each time; `check` sees the state after the restart.
   */
  async function atEveryStep<T>(
    setup: (driver: NfsDriver) => Promise<T>,
    op: (driver: NfsDriver, state: T) => Promise<unknown>,
    check: (state: T, step: number, scan: ScanResult, fresh: NfsDriver) => Promise<void>,
    over: Partial<NfsBackendConfig> = {},
  ): Promise<number> {
    const counting = stopAfter(0);
    const before = counting.commands();
    await op(makeDriver(counting.runner, over), await setup(makeDriver()));
    const steps = counting.commands() - before;
    expect(steps).toBeGreaterThan(0);
    for (let step = 1; step <= steps; step++) {
      await rm(share, { recursive: true, force: true });
      share = await mkdtemp(join(tmpdir(), 'kindling-crash-'));
      const state = await setup(makeDriver());
      const crash = stopAfter(step);
      void op(makeDriver(crash.runner, over), state);
      await crash.reached;
      const fresh = makeDriver();
      await check(state, step, await fresh.scan(), fresh);
    }
    return steps;
  }

  /** Removes every leftover as recovery does, then checks the share holds nothing but complete volumes. */
  async function cleanUp(fresh: NfsDriver, scan: ScanResult): Promise<ScanResult> {
    for (const leftover of scan.leftovers) await fresh.removeLeftover(leftover);
    const after = await fresh.scan();
    expect(after.leftovers).toEqual([]);
    expect(after.strays).toEqual([]);
    return after;
  }

  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-crash-'));
  });
  afterEach(async () => {
    await rm(share, { recursive: true, force: true });
  });

  it('create: the unfinished file is a partial volume, never published; a retry makes it', async () => {
    const vol: VolumeRef = { id: randomUUID(), size: 2, location: {} };
    const steps = await atEveryStep(
      async () => vol,
      (driver) => driver.createVolume(vol),
      async (_, __, scan, fresh) => {
        expect(ids(scan)).toEqual([]);
        expect(scan.leftovers).toEqual([
          { kind: 'partial-volume', id: vol.id, where: expect.stringMatching(new RegExp(`^${path(`volume-${vol.id}`)}\\.part-${TEST_OWNER}-`)) },
        ]);
        await cleanUp(fresh, scan);
        expect(await readdir(share)).toEqual([]);
        await fresh.createVolume(vol);
        expect((await fresh.scan()).volumes).toEqual([{ id: vol.id, size: 2, location: expect.any(Object) }]);
      },
      // A sparse raw file is made with no command (ftruncate through the agent's descriptor), so the
      // allocated one (fallocate) stands in here; crash-fs.test.ts stops a create between its file steps.
      format === 'raw' ? { sparse: false } : {},
    );
    expect(steps).toBe(1);
  });

  it('clone: the source keeps its chain and every write; a retry clones it', async () => {
    interface State {
      src: VolumeRef;
      snap: SnapshotRef;
      info: string;
      clone: VolumeRef;
    }
    const steps = await atEveryStep<State>(
      async (driver) => {
        const src = await newVolume(driver);
        await write(path(`volume-${src.id}`), format, '0x11');
        const snap = await newSnapshot(driver, src);
        await write(path(src.location.activeFile), 'qcow2', '0x22');
        const info = await readFile(path(`volume-${src.id}.info`), 'utf8');
        return { src, snap, info, clone: { id: randomUUID(), size: 2, location: {} } };
      },
      (driver, { src, clone }) => driver.cloneVolume(clone, src),
      async ({ src, snap, info, clone }, step, scan, fresh) => {
        expect(ids(scan)).toEqual([src.id]);
        expect(scan.snapshots.map((s) => s.id)).toEqual([snap.id]);
        // The copy is under its temporary name throughout. Stopped after creating the temporary
        // overlay: no record names it yet; later, the temporary snapshot is on the source's chain.
        expect(kinds(scan.leftovers)).toEqual(
          [`partial-volume:${clone.id}`, step === 1 ? `orphan-overlay:${src.id}` : `temp-snapshot:${src.id}`].sort(),
        );
        // Written to the source after the crash, before recovery: removing the temporary snapshot keeps it.
        await write(await activeOf(src), 'qcow2', '0x33', '1M');
        await cleanUp(fresh, scan);
        expect(await readFile(path(`volume-${src.id}.info`), 'utf8')).toBe(info);
        const active = path(src.location.activeFile);
        expect(await reads(active, 'qcow2', '0x22')).toBe(true);
        expect(await reads(active, 'qcow2', '0x33', '1M')).toBe(true);
        expect(await reads(path(`volume-${src.id}`), format, '0x11')).toBe(true);
        expect(await reads(path(`volume-${src.id}`), format, '0x00', '1M')).toBe(true);
        await fresh.cloneVolume(clone, src);
        expect(await reads(path(`volume-${clone.id}`), format, '0x22')).toBe(true);
        expect(await reads(path(`volume-${clone.id}`), format, '0x33', '1M')).toBe(true);
        expect((await fresh.scan()).volumes.find((v) => v.id === clone.id)?.size).toBe(2);
      },
    );
    // Temporary overlay, the empty 2 GiB copy (qcow2: qemu-img's image of the size; raw: no command), copy,
    // commit of the temporary overlay.
    expect(steps).toBe(format === 'raw' ? 3 : 4);
  });

  it('volume from snapshot: the copy is a partial volume until complete; a retry makes it', async () => {
    interface State {
      src: VolumeRef;
      snap: SnapshotRef;
      vol: VolumeRef;
    }
    const steps = await atEveryStep<State>(
      async (driver) => {
        const src = await newVolume(driver);
        await write(path(`volume-${src.id}`), format, '0x11');
        const snap = await newSnapshot(driver, src);
        return { src, snap, vol: { id: randomUUID(), size: 2, location: {} } };
      },
      (driver, { src, snap, vol }) => driver.createVolumeFromSnapshot(vol, snap, src),
      async ({ src, snap, vol }, _, scan, fresh) => {
        expect(ids(scan)).toEqual([src.id]);
        expect(kinds(scan.leftovers)).toEqual([`partial-volume:${vol.id}`]);
        await cleanUp(fresh, scan);
        await fresh.createVolumeFromSnapshot(vol, snap, src);
        expect(await reads(path(`volume-${vol.id}`), format, '0x11')).toBe(true);
      },
    );
    // The empty copy (qcow2 only: a raw one is made with no command), then the copy.
    expect(steps).toBe(format === 'raw' ? 1 : 2);
  });

  it('snapshot create: an overlay with no record is an orphan; removed, the volume is as before', async () => {
    const steps = await atEveryStep(
      async (driver) => {
        const vol = await newVolume(driver);
        await write(path(`volume-${vol.id}`), format, '0x11');
        return { vol, snap: { id: randomUUID(), volumeId: vol.id, volumeSize: 1, location: {} } as SnapshotRef };
      },
      (driver, { vol, snap }) => driver.createSnapshot(snap, vol),
      async ({ vol, snap }, _, scan, fresh) => {
        expect(scan.snapshots).toEqual([]);
        expect(scan.volumes.map((v) => v.location.activeFile)).toEqual([`volume-${vol.id}`]);
        expect(scan.leftovers).toEqual([{ kind: 'orphan-overlay', id: vol.id, where: path(`volume-${vol.id}.${snap.id}`) }]);
        await cleanUp(fresh, scan);
        expect(await readdir(share)).toEqual([`volume-${vol.id}`]);
        await fresh.createSnapshot(snap, vol);
        expect((await fresh.scan()).snapshots.map((s) => s.id)).toEqual([snap.id]);
      },
    );
    expect(steps).toBe(1);
  });

  describe('snapshot delete, retried after a crash at any step', () => {
    async function setup(driver: NfsDriver) {
      const vol = await newVolume(driver);
      await write(path(`volume-${vol.id}`), format, '0x11');
      const a = await newSnapshot(driver, vol);
      await write(path(vol.location.activeFile), 'qcow2', '0x22');
      const b = await newSnapshot(driver, vol);
      await write(path(vol.location.activeFile), 'qcow2', '0x33', '1M');
      return { vol, a, b };
    }

    it('of an older snapshot (commit, rebase, record, remove)', async () => {
      const steps = await atEveryStep(
        setup,
        (driver, { vol, a }) => driver.deleteSnapshot(a, vol),
        async ({ vol, a, b }, _, scan, fresh) => {
          // Still recorded: the service's error_deleting record is retried, not lost.
          expect(scan.snapshots.map((s) => s.id).sort()).toEqual([a.id, b.id].sort());
          expect(scan.leftovers).toEqual([]);
          const { volume } = await fresh.deleteSnapshot(a, vol);
          expect(volume.activeFile).toBe(`volume-${vol.id}.${b.id}`);
          expect((await fresh.scan()).snapshots.map((s) => s.id)).toEqual([b.id]);
          expect(await reads(path(volume.activeFile), 'qcow2', '0x22')).toBe(true);
          expect(await reads(path(volume.activeFile), 'qcow2', '0x33', '1M')).toBe(true);
          // b's point-in-time data (the base, now) is what it was.
          expect(await reads(path(`volume-${vol.id}`), format, '0x22')).toBe(true);
          expect(await reads(path(`volume-${vol.id}`), format, '0x00', '1M')).toBe(true);
        },
      );
      expect(steps).toBe(2);
    });

    it('of the latest snapshot (commit, record, remove)', async () => {
      const steps = await atEveryStep(
        setup,
        (driver, { vol, b }) => driver.deleteSnapshot(b, vol),
        async ({ vol, a, b }, _, scan, fresh) => {
          expect(scan.snapshots.map((s) => s.id).sort()).toEqual([a.id, b.id].sort());
          const { volume } = await fresh.deleteSnapshot(b, vol);
          expect(volume.activeFile).toBe(`volume-${vol.id}.${a.id}`);
          expect(await reads(path(volume.activeFile), 'qcow2', '0x22')).toBe(true);
          expect(await reads(path(volume.activeFile), 'qcow2', '0x33', '1M')).toBe(true);
          expect(await reads(path(`volume-${vol.id}`), format, '0x11')).toBe(true);
        },
      );
      expect(steps).toBe(1);
    });
  });

  it('revert: the new overlay built aside is a temporary file; a retry finishes the revert', async () => {
    const steps = await atEveryStep(
      async (driver) => {
        const vol = await newVolume(driver);
        await write(path(`volume-${vol.id}`), format, '0x11');
        const snap = await newSnapshot(driver, vol);
        await write(path(vol.location.activeFile), 'qcow2', '0x22');
        return { vol, snap };
      },
      (driver, { vol, snap }) => driver.revertToSnapshot(vol, snap),
      async ({ vol, snap }, _, scan, fresh) => {
        const active = path(vol.location.activeFile);
        expect(scan.leftovers).toEqual([{ kind: 'temp-file', id: vol.id, where: expect.stringMatching(new RegExp(`^${active}\\.revert-${TEST_OWNER}-`)) }]);
        expect(await reads(active, 'qcow2', '0x22')).toBe(true);
        // Recovery may resume before or after removing the leftovers: both finish the revert.
        await fresh.revertToSnapshot(vol, snap);
        await cleanUp(fresh, await fresh.scan());
        expect(await reads(active, 'qcow2', '0x11')).toBe(true);
        expect((await fresh.scan()).volumes.map((v) => v.size)).toEqual([1]);
      },
    );
    expect(steps).toBe(1);
  });

  it('volume delete stopped after removing the record: found with its base, its overlays strays; a retry deletes all', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    const snap = await newSnapshot(driver, vol);
    await rm(path(`volume-${vol.id}.info`));
    const scan = await makeDriver().scan();
    expect(ids(scan)).toEqual([vol.id]);
    // Unclaimed: it could be another agent's snapshot between its overlay and its record.
    expect(scan.leftovers).toEqual([]);
    expect(scan.strays).toEqual([{ where: path(`volume-${vol.id}.${snap.id}`), reason: expect.stringMatching(/never claimed/) }]);
    await makeDriver().deleteVolume(vol);
    expect(await readdir(share)).toEqual([]);
  });

  it('removeLeftover refuses what is not a leftover, and changes nothing', async () => {
    const driver = makeDriver();
    const vol = await newVolume(driver);
    const snap = await newSnapshot(driver, vol);
    const before = (await readdir(share)).sort();
    const overlay = path(`volume-${vol.id}.${snap.id}`);
    await expect(driver.removeLeftover({ kind: 'orphan-overlay', id: vol.id, where: overlay })).rejects.toBeInstanceOf(ConflictError);
    for (const leftover of [
      { kind: 'partial-volume', id: vol.id, where: path(`volume-${vol.id}`) },
      { kind: 'temp-file', id: vol.id, where: path(`volume-${vol.id}.info`) },
      { kind: 'temp-snapshot', id: vol.id, where: overlay },
      { kind: 'partial-volume', id: randomUUID(), where: path(partFile(vol.id, TEST_OWNER)) },
      // Another agent's (its owner tag), never this one's to remove.
      { kind: 'partial-volume', id: vol.id, where: path(partFile(vol.id, '0123456789ab')) },
      { kind: 'temp-file', id: vol.id, where: '/etc/.kindling-probe-00000000' },
    ] as const) {
      await expect(driver.removeLeftover(leftover)).rejects.toThrow(/is not a .* leftover of/);
    }
    expect((await readdir(share)).sort()).toEqual(before);
    expect((await driver.stats(false)).provisionedCapacityGb).toBe(1);
  });
});
