// The LVM driver's thick revert, failed extends and failed cleanups, and its VG queue (recording runner).
import { afterAll, describe, expect, it } from 'vitest';
import { BackendError } from '@kindling/protocol';
import { withVgLock } from './queue.js';
import { LvmDriver } from './driver.js';
import {
  ACTIVATE, GIB, LOOKUP, OWNER, S1, V1, V2, V3, VG, config, fake, gate, pool, removeConfDir, reportJson, snapOf, snapTags,
  started, thick, thinVol, volTags, type Fake, type FakeLv, type FakeOptions,
} from '../../testing/lvm-fake.js';

afterAll(removeConfDir);

describe('LvmDriver revert, extend and cleanup failures (recording runner)', () => {
  it('a failed extend of a thick origin with snapshots puts its activation back and says whether storage changed', async () => {
    const origin = (size: number): FakeLv[] => [
      { name: `volume-${V1}`, size, attr: 'owi-a-s---' },
      { name: `_snapshot-${S1}`, size: GIB, attr: 'swi-a-s---', origin: `volume-${V1}` },
    ];
    const noSpace = (a: string[]): string | undefined => (a[0] === 'lvextend' ? '  Insufficient free space: 512 extents needed, but only 3 available' : undefined);
    // lvm2 still reports the old size: nothing changed, the service may keep the volume available.
    const f = fake({ lvs: origin(GIB), fail: noSpace });
    const err = await (await started(f)).extendVolume(thick(V1), 3).catch((e: unknown) => e);
    expect((err as BackendError).details.storageChanged).toBe(false);
    expect(f.argv()).toEqual([
      ['lvchange', '-a', 'n', `${VG}/volume-${V1}`],
      ['lvextend', '-L', '3g', `${VG}/volume-${V1}`],
      [...ACTIVATE, `${VG}/volume-${V1}`],
      [...LOOKUP, `${VG}/volume-${V1}`],
    ]);
    // lvm2 reports the new size although lvextend failed: storage changed.
    const grown = fake({ lvs: origin(3 * GIB), fail: noSpace });
    const err2 = await (await started(grown)).extendVolume(thick(V1), 3).catch((e: unknown) => e);
    expect((err2 as BackendError).details.storageChanged).toBe(true);
    // Refused at the first step: nothing changed.
    const stuck = fake({ lvs: origin(GIB), fail: (a) => (a[0] === 'lvchange' ? '  Logical volume in use.' : undefined) });
    const err3 = await (await started(stuck)).extendVolume(thick(V1), 3).catch((e: unknown) => e);
    expect((err3 as BackendError).details.storageChanged).toBe(false);
  });

  it('reports a cleanup that failed in readiness, and scan lists what it left for the next start', async () => {
    const f = fake({
      fail: (a) => {
        if (a[0] === 'dd') return 'dd: error writing: No space left on device';
        if (a[0] === 'lvremove' && a.at(-1) === `${VG}/partial-${V2}`) return '  Logical volume is in use.';
        return undefined;
      },
    });
    const driver = await started(f);
    await expect(driver.cloneVolume(thick(V2), thick(V1))).rejects.toThrow(/dd failed/);
    const { warnings } = await driver.readiness();
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`^cleanup of ${VG}/partial-${V2} failed \\(retried at the next start\\): lvremove failed`))]);
  });

  /** A thick volume and its snapshot; after the merge lvm2 drops the snapshot, so a lookup finds it no more. */
  const merging = (over: FakeOptions = {}): Fake => {
    let merged = false;
    return fake({
      lvs: [
        { name: `volume-${V1}`, size: 2 * GIB, attr: 'owi-a-s---', tags: ['kindling_cow_/dev/pv0:256-511'] },
        { name: `_snapshot-${S1}`, size: 2 * GIB, attr: 'swi-a-s---', origin: `volume-${V1}` },
      ],
      fail: (a) => {
        if (a[0] === 'lvconvert') merged = true;
        return merged && a[0] === 'lvs' && a.at(-1) === `${VG}/_snapshot-${S1}` ? `  Failed to find logical volume "${VG}/_snapshot-${S1}"` : undefined;
      },
      ...over,
    });
  };

  it('reverts a thick volume by merging, then re-creates the snapshot on its old COW store\'s extents', async () => {
    const f = merging();
    const driver = await started(f);
    const v = thick(V1, 2);
    await driver.revertToSnapshot(v, snapOf(v));
    expect(f.argv()).toEqual([
      expect.arrayContaining(['lvm', 'fullreport']),
      // Where the COW store lies is on the volume already (tags): nothing to add.
      ['lvs', '--noheadings', '-o', 'seg_pe_ranges', `${VG}/_snapshot-${S1}`],
      ['lvconvert', '--background', '--merge', `${VG}/_snapshot-${S1}`],
      [...LOOKUP, `${VG}/volume-${V1}`],
      [...LOOKUP, `${VG}/volume-${V1}`],
      [...LOOKUP, `${VG}/_snapshot-${S1}`],
      ['lvcreate', '-s', '-k', 'y', '-l', '256', '-n', `_snapshot-${S1}`, ...snapTags(S1, V1), `${VG}/volume-${V1}`, '/dev/pv0:256-511'],
      [...LOOKUP, `${VG}/volume-${V1}`],
      ['lvchange', '--deltag', 'kindling_cow_/dev/pv0:256-511', `${VG}/volume-${V1}`],
    ]);
  });

  it('waits for a thick merge outside the VG queue: a create meanwhile completes, and never on the old COW store', async () => {
    let created = false;
    let polls = 0;
    const cow = 'kindling_cow_/dev/pv0:256-511';
    const f = merging({
      output: (a) => {
        if (a[0] === 'lvconvert') return `  Merging of snapshot ${VG}/_snapshot-${S1} will occur on next activation of ${VG}/volume-${V1}.`;
        // lv_attr 'O' while the merge runs, and it runs until another create got through the VG queue.
        if (a[0] === 'lvs' && a[1] === '--reportformat' && a.at(-1) === `${VG}/volume-${V1}`) {
          polls++;
          return reportJson([{ name: `volume-${V1}`, size: GIB, attr: created ? '-wi-a-----' : 'Owi-a-s---', tags: [cow] }]);
        }
        // The PV: extents 0-255 the volume's, 256-511 the old COW store (free once merged), the rest free.
        const seg = (start: number, size: number, lv: string): Record<string, string> => ({
          pv_name: '/dev/pv0', vg_name: VG, pvseg_start: String(start), pvseg_size: String(size), lv_name: lv,
        });
        if (a[0] === 'pvs') return JSON.stringify({ report: [{ pvseg: [seg(0, 256, `volume-${V1}`), seg(256, 25344, '')] }] });
        return undefined;
      },
    });
    const driver = new LvmDriver(config(), {
      run: f.run,
      hostId: 'host-a',
      deviceExists: async () => true,
      sleep: async () => {
        if (polls === 1) created = (await driver.createVolume(thick(V2, 1)), true);
      },
    });
    await driver.start();
    f.reset();
    await driver.revertToSnapshot(thick(V1), snapOf(thick(V1)));
    expect(created).toBe(true);
    expect(f.argv().map((a) => a.slice(0, 3).join(' '))).toEqual([
      'lvm fullreport --reportformat',
      'lvs --noheadings -o',
      'lvconvert --background --merge',
      'lvchange -a n',
      'lvchange -a y',
      'lvs --reportformat json',
      'pvs --segments --reportformat',
      'lvcreate -n volume-22222222-2222-4222-8222-222222222222',
      'lvs --reportformat json',
      'lvs --reportformat json',
      'lvs --reportformat json',
      'lvcreate -s -k',
      'lvs --reportformat json',
      'lvchange --deltag kindling_cow_/dev/pv0:256-511',
    ]);
    // The create ran while the old store was free: it was given every free extent but those.
    expect(f.argv()[7]).toEqual(['lvcreate', '-n', `volume-${V2}`, '-L', '1g', ...volTags(V2), VG, '/dev/pv0:512-25599']);
    expect(f.argv()[11]).toEqual(['lvcreate', '-s', '-k', 'y', '-l', '256', '-n', `_snapshot-${S1}`, ...snapTags(S1, V1), `${VG}/volume-${V1}`, '/dev/pv0:256-511']);
    // Released: the next thick create goes anywhere again.
    f.reset();
    await driver.createVolume(thick(V3, 1));
    expect(f.argv()).toEqual([['lvcreate', '-n', `volume-${V3}`, '-L', '1g', ...volTags(V3), VG]]);
  });

  it('tells the service what a failed thick revert left: nothing changed before the merge, the snapshot gone after it', async () => {
    const before = merging({ fail: (a) => (a[0] === 'lvs' && a.includes('seg_pe_ranges') ? '  read error' : undefined) });
    const d1 = await started(before);
    const e1 = await d1.revertToSnapshot(thick(V1, 2), snapOf(thick(V1, 2))).catch((e: unknown) => e);
    expect((e1 as BackendError).details).toMatchObject({ storageChanged: false, snapshotPresent: true });
    // The merge never ends: the wait gives up, the volume has the snapshot's data, the snapshot LV is gone.
    const after = merging({ output: (a) => (a[0] === 'lvs' && a[1] === '--reportformat' && a.at(-1) === `${VG}/volume-${V1}` ? reportJson([{ name: `volume-${V1}`, size: GIB, attr: 'Owi-a-s---' }]) : undefined) });
    const d2 = await started(after);
    const e2 = await d2.revertToSnapshot(thick(V1, 2), snapOf(thick(V1, 2))).catch((e: unknown) => e);
    expect((e2 as BackendError).message).toMatch(/did not finish/);
    expect((e2 as BackendError).details).toMatchObject({ storageChanged: true, snapshotPresent: false });
  });

});

describe('per-VG write queue', () => {
  it('runs one write at a time per VG, in order, and survives a failure', async () => {
    const order: string[] = [];
    const step = (name: string, fail = false) => async (): Promise<string> => {
      order.push(`${name}:start`);
      await new Promise((r) => setTimeout(r, 5));
      order.push(`${name}:end`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([
      withVgLock('vg-q', step('a')),
      withVgLock('vg-q', step('b', true)),
      withVgLock('vg-q', step('c')),
    ]);
    expect(order).toEqual(['a:start', 'a:end', 'b:start', 'b:end', 'c:start', 'c:end']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});

describe('LvmDriver and its VG queue (recording runner)', () => {
  it('a stats refresh racing a create waits for it', async () => {
    const slow = gate();
    // The report never lists the new LV, as a refresh read just before lvcreate finished would not.
    const f = fake({
      hold: (a) => {
        if (a[0] !== 'lvcreate') return undefined;
        slow.arrive();
        return slow.promise;
      },
    });
    const driver = await started(f, { volumeClear: 'zero' });
    const create = driver.createVolume(thick(V1, 1));
    await slow.reached;
    const stats = driver.stats(true);
    await new Promise((r) => setImmediate(r));
    // The refresh runs inside the VG queue: not before the create is done.
    expect(f.argv().map((a) => a[0])).toEqual(['lvcreate']);
    slow.open();
    await Promise.all([create, stats]);
    expect(f.argv().map((a) => a[0])).toEqual(['lvcreate', 'lvm']);
  });

  it('zeroes outside the VG queue: another create completes while a zeroing dd is stalled', async () => {
    const zeroing = gate();
    const f = fake({
      lvs: [{ name: `volume-${V1}`, size: 8 * GIB, tags: [OWNER] }],
      hold: (a) => {
        if (a[0] !== 'dd') return undefined;
        zeroing.arrive();
        return zeroing.promise;
      },
    });
    const driver = await started(f, { volumeClear: 'zero' });
    const deleting = driver.deleteVolume(thick(V1, 8));
    await zeroing.reached;
    await expect(driver.createVolume(thick(V2, 1))).resolves.toMatchObject({ lv: `volume-${V2}` });
    await expect(driver.stats(true)).resolves.toBeDefined();
    zeroing.open();
    await deleting;
    expect(f.argv().map((a) => a.slice(0, 2).join(' '))).toEqual([
      'lvs --reportformat',
      'lvchange -a',
      'lvrename cinder-volumes',
      'dd if=/dev/zero',
      'lvcreate -n',
      'lvm fullreport',
      'lvremove --config',
    ]);
  });

  it('zeroes from what lvm2 reports now: never from the record or the cached report', async () => {
    // The cache and the records say V1 is thin and V2 thick; lvs says the opposite, and lvs decides.
    const f = fake({
      lvs: [{ name: `volume-${V1}`, size: GIB, pool: pool.name, attr: 'Vwi-a-tz--' }, { name: `volume-${V2}`, size: GIB, tags: [OWNER] }],
      output: (a) => {
        if (a[0] !== 'lvs') return undefined;
        if (a.at(-1) === `${VG}/volume-${V1}`) return reportJson([{ name: `volume-${V1}`, size: GIB, tags: [OWNER] }]);
        if (a.at(-1) === `${VG}/volume-${V2}`) return reportJson([{ name: `volume-${V2}`, size: GIB, pool: pool.name, attr: 'Vwi-a-tz--' }]);
        return undefined;
      },
    });
    const driver = await started(f, { volumeClear: 'zero' });
    await driver.deleteVolume(thinVol(V1));
    await driver.deleteVolume(thick(V2));
    expect(f.argv().map((a) => a[0])).toEqual(['lvs', 'lvchange', 'lvrename', 'dd', 'lvremove', 'lvs', 'lvremove']);
  });
});
