// The LVM driver after a crash at every step, on a small lvm2 world (recording runner).
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@kindling/protocol';
import { GIB, OWNER, S1, V1, V2, V3, V4, VG, pool, removeConfDir, snapOf, thick, thinVol } from '../../testing/lvm-fake.js';
import { DATA, SNAP, World, agentOn, content, everyCrash, names, sourceWorld, type WorldLv } from '../../testing/lvm-world.js';

afterAll(removeConfDir);

describe('LvmDriver after a crash at every step (recording runner on a small lvm2 world)', () => {
  for (const thinLvs of [false, true]) {
    const kind = thinLvs ? 'thin' : 'thick';
    const src = thinLvs ? thinVol(V1) : thick(V1);

    it(`${kind} clone: never published incomplete; leftovers go (zeroed); a retry finishes`, async () => {
      const steps = await everyCrash(thinLvs, (d) => d.cloneVolume(thinLvs ? thinVol(V2, 2) : thick(V2), src), async (world, driver, crash) => {
        const scan = await driver.scan();
        const published = scan.volumes.some((v) => v.id === V2);
        if (published) expect(content(world, `volume-${V2}`), JSON.stringify(crash)).toBe(DATA);
        expect(scan.leftovers).toEqual([]);
        expect(world.leaked, JSON.stringify(crash)).toEqual([]);
        // The record went to error (or available): delete it and clone again.
        await driver.deleteVolume(thinLvs ? thinVol(V2, 2) : thick(V2));
        await driver.cloneVolume(thinLvs ? thinVol(V2, 2) : thick(V2), src);
        expect(content(world, `volume-${V2}`)).toBe(DATA);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`, `volume-${V2}`]);
        expect(world.leaked).toEqual([]);
      });
      expect(steps).toBeGreaterThanOrEqual(thinLvs ? 5 : 7);
    });

    it(`${kind} volume from a snapshot: never published incomplete; a retry finishes`, async () => {
      const v2 = thinLvs ? thinVol(V2, 2) : thick(V2, 2);
      await everyCrash(thinLvs, (d) => d.createVolumeFromSnapshot(v2, snapOf(src), src), async (world, driver, crash) => {
        const scan = await driver.scan();
        if (scan.volumes.some((v) => v.id === V2)) {
          expect(content(world, `volume-${V2}`), JSON.stringify(crash)).toBe(SNAP);
          expect(scan.volumes.find((v) => v.id === V2)?.size).toBe(2);
        }
        expect(scan.leftovers).toEqual([]);
        expect(world.leaked).toEqual([]);
        await driver.deleteVolume(v2);
        await driver.createVolumeFromSnapshot(v2, snapOf(src), src);
        expect(content(world, `volume-${V2}`)).toBe(SNAP);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`, `volume-${V2}`]);
      });
    });

    it(`${kind} revert: resumed by a second call from any step, the volume holds the snapshot's data and the snapshot stays`, async () => {
      await everyCrash(thinLvs, (d) => d.revertToSnapshot(src, snapOf(src)), async (world, driver, crash) => {
        // Never an available volume with neither the old nor the snapshot's data, and never no volume at all.
        expect([DATA, SNAP], JSON.stringify(crash)).toContain(content(world, `volume-${V1}`));
        await driver.revertToSnapshot(src, snapOf(src));
        expect(content(world, `volume-${V1}`), JSON.stringify(crash)).toBe(SNAP);
        expect(content(world, `_snapshot-${S1}`)).toBe(SNAP);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`]);
        expect((await driver.scan()).leftovers).toEqual([]);
        // The merged COW store's extents are never left free with the old blocks: the snapshot holds them, its delete zeroes them.
        expect(world.exposed(), JSON.stringify(crash)).toEqual([]);
        await driver.deleteSnapshot(snapOf(src), src);
        expect(world.exposed()).toEqual([]);
        expect(world.leaked).toEqual([]);
      });
    });

    it(`${kind} revert: a second call without removeLeftover first also finishes`, async () => {
      const clean = await agentOn(sourceWorld(thinLvs), thinLvs);
      const before = clean.calls.length;
      await clean.driver.revertToSnapshot(src, snapOf(src));
      for (let at = before; at < clean.calls.length; at++) {
        const world = sourceWorld(thinLvs);
        await expect((await agentOn(world, thinLvs, { at, when: 'after' })).driver.revertToSnapshot(src, snapOf(src))).rejects.toThrow();
        const driver = (await agentOn(world, thinLvs)).driver;
        await driver.revertToSnapshot(src, snapOf(src));
        expect(content(world, `volume-${V1}`)).toBe(SNAP);
        expect(names(world)).toEqual([`_snapshot-${S1}`, `volume-${V1}`]);
      }
    });

    it(`${kind} volume delete: finished by a retry or by removeLeftover, and zeroed first when thick`, async () => {
      const world = new World([{ name: `volume-${V2}`, size: GIB, tags: [`kindling_id_${V2}`, 'kindling_kind_volume'], content: DATA, ...(thinLvs ? { pool: pool.name, attr: 'Vwi-a-tz--' } : {}) }]);
      const clean = await agentOn(world, thinLvs);
      const before = clean.calls.length;
      await clean.driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2));
      const steps = clean.calls.length - before;
      for (let at = before; at < before + steps; at++) {
        for (const when of ['before', 'during', 'after'] as const) {
          for (const finish of ['retry', 'removeLeftover'] as const) {
            const w = new World([{ name: `volume-${V2}`, size: GIB, tags: [`kindling_id_${V2}`, 'kindling_kind_volume'], content: DATA, ...(thinLvs ? { pool: pool.name, attr: 'Vwi-a-tz--' } : {}) }]);
            await expect((await agentOn(w, thinLvs, { at, when })).driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2))).rejects.toThrow();
            const driver = (await agentOn(w, thinLvs)).driver;
            const scan = await driver.scan();
            if (finish === 'retry') await driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2));
            else for (const leftover of scan.leftovers) await driver.removeLeftover(leftover);
            // removeLeftover alone finishes only what left the final name; a deleting record with it is retried.
            if (finish === 'removeLeftover' && scan.volumes.length) await driver.deleteVolume(thinLvs ? thinVol(V2) : thick(V2));
            expect(names(w), JSON.stringify({ at, when, finish })).toEqual([]);
            expect(w.leaked, JSON.stringify({ at, when, finish })).toEqual([]);
          }
        }
      }
    });
  }

  it('thick snapshot delete: its copy-on-write store is zeroed before it goes, whatever step the agent died at', async () => {
    const src = thick(V1);
    await everyCrash(false, (d) => d.deleteSnapshot(snapOf(src), src), async (world, driver, crash) => {
      await driver.deleteSnapshot(snapOf(src), src);
      expect(names(world)).toEqual([`volume-${V1}`]);
      expect(world.leaked, JSON.stringify(crash)).toEqual([]);
    });
  });

  it('thick extend of an origin with snapshots: a retry finishes, active, at the new size', async () => {
    const src = thick(V1);
    await everyCrash(false, (d) => d.extendVolume(src, 3), async (world, driver) => {
      await driver.extendVolume(src, 3);
      expect(world.lvs.get(`volume-${V1}`)?.size).toBe(3 * GIB);
      expect(world.lvs.get(`volume-${V1}`)?.attr?.[4]).toBe('a');
    });
  });

  it('scan reports each temporary name as the leftover it is, and removeLeftover publishes a revert whose old volume is gone', async () => {
    const tagged = (name: string, id: string, extra: Partial<WorldLv> = {}): WorldLv => ({
      name, size: GIB, tags: [`kindling_id_${id}`, OWNER], content: DATA, ...extra,
    });
    const world = new World([
      { ...pool, content: '' },
      tagged(`partial-${V2}`, V2),
      tagged(`clone-snap-${V2}`, V2, { origin: `volume-${V1}`, attr: 'swi-a-s---', cow: 'data:old' }),
      tagged(`volume-${V1}`, V1, { attr: 'owi-a-s---' }),
      tagged(`clear-volume-${V3}`, V3),
      tagged(`revert-${V4}`, V4, { pool: pool.name, attr: 'Vwi-a-tz--', content: SNAP }),
      { name: `partial-${V3}`, size: GIB, content: DATA },
      // Another backend's on the same VG, and one from before owner tags: reported, never taken.
      { name: `clone-snap-${V3}`, size: GIB, tags: [`kindling_id_${V3}`, 'kindling_owner_host-a/other'], content: DATA, origin: `volume-${V1}`, attr: 'swi-a-s---', cow: 'data:old' },
      { name: `partial-${S1}`, size: GIB, tags: [`kindling_id_${S1}`], content: DATA },
    ]);
    const { driver } = await agentOn(world, false);
    const scan = await driver.scan();
    expect(scan.leftovers).toEqual([
      { kind: 'partial-volume', id: V2, where: `${VG}/partial-${V2}` },
      { kind: 'temp-snapshot', id: V1, where: `${VG}/clone-snap-${V2}` },
      { kind: 'pending-clear', id: V3, where: `${VG}/clear-volume-${V3}` },
      { kind: 'partial-volume', id: V4, where: `${VG}/revert-${V4}` },
    ]);
    expect(scan.strays).toEqual([
      { where: `${VG}/partial-${V3}`, reason: `named as Kindling's, but without its tag kindling_id_${V3}` },
      { where: `${VG}/clone-snap-${V3}`, reason: 'a leftover of host-a/other, not of this backend: left to its owner' },
      { where: `${VG}/partial-${S1}`, reason: 'a leftover without an owner tag, not of this backend: left to its owner' },
    ]);
    for (const leftover of scan.leftovers) await driver.removeLeftover(leftover);
    await expect(driver.removeLeftover({ kind: 'temp-snapshot', id: V1, where: `${VG}/clone-snap-${V3}` })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(names(world)).toEqual([`clone-snap-${V3}`, `partial-${V3}`, `partial-${S1}`, `volume-${V1}`, `volume-${V4}`]);
    expect(content(world, `volume-${V4}`)).toBe(SNAP);
    expect(world.leaked).toEqual([]);
    await expect(driver.removeLeftover({ kind: 'partial-volume', id: V1, where: `${VG}/volume-${V1}` })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
