import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NfsBackendConfig } from '../../config.js';
import { run, type Runner } from '../../exec/run.js';
import type { ScanResult } from '../driver.js';
import { nfsConfig, newSnapshot, newVolume, TEST_HOST } from '../../testing/nfs-driver.js';
import { NfsDriver } from './driver.js';
import { onFault } from './faults.js';
import { Provisioned } from './provisioned.js';
import { SCAN_PAGE } from './scan.js';

describe('NFS scan and capacity', () => {
  let share: string;

  const makeDriver = (format: 'qcow2' | 'raw' = 'qcow2', over: Partial<NfsBackendConfig> = {}) =>
    new NfsDriver(nfsConfig(share, { format, maxOverSubscriptionRatio: 1000, ...over }), { run, hostId: TEST_HOST });
  const path = (file: string) => join(share, file);

  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-scan-'));
  });
  afterEach(async () => {
    await rm(share, { recursive: true, force: true });
  });

  it('skips and reports what it cannot use, removes none of it, and the backend keeps working', async () => {
    for (const format of ['qcow2', 'raw'] as const) {
      await rm(share, { recursive: true, force: true });
      share = await mkdtemp(join(tmpdir(), 'kindling-scan-'));
      const good = await newVolume(makeDriver(format), 2);
      const [empty, linked, garbled, overlayOnly] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      await writeFile(path(`volume-${empty}`), '');
      await symlink('/etc/hostname', path(`volume-${linked}`));
      await writeFile(path(`volume-${garbled}.info`), '{ not json');
      await run(['qemu-img', 'create', '-q', '-f', format, path(`volume-${garbled}`), '1G']);
      await writeFile(path(`volume-${overlayOnly}.${randomUUID()}`), 'x');
      await writeFile(path('volume-not-a-uuid'), 'x');
      await writeFile(path('README'), 'not ours, not reported');
      const files = (await readdir(share)).sort();

      const driver = makeDriver(format);
      const scan = await driver.scan();
      expect(scan.volumes.map((v) => v.id)).toEqual([good.id]);
      expect(scan.leftovers).toEqual([]);
      const strays = new Map(scan.strays.map((s) => [s.where.slice(share.length + 1), s.reason]));
      // One stray per unusable volume (at its base file), one per file that belongs to none.
      const unusable = files.filter((f) => f.startsWith('volume-') && !f.includes(good.id) && !f.endsWith('.info'));
      expect([...strays.keys()].sort()).toEqual(unusable.sort());
      expect(strays.get(`volume-${empty}`)).toMatch(format === 'qcow2' ? /not a valid qcow2 image/ : /virtual size of 0/);
      expect(strays.get(`volume-${linked}`)).toMatch(/symbolic link/);
      expect(strays.get(`volume-${garbled}`)).toMatch(/not valid JSON/);
      expect(strays.get('volume-not-a-uuid')).toBe('not a name Kindling writes');

      expect((await driver.stats(true)).provisionedCapacityGb).toBe(2);
      await newVolume(driver);
      expect((await driver.stats(false)).provisionedCapacityGb).toBe(3);
      expect((await readdir(share)).length).toBe(files.length + 1);
    }
  });

  it('reads storage in pages of at most SCAN_PAGE volumes, each volume with its snapshots in one page, and counts from them', async () => {
    const driver = makeDriver('raw');
    // Ids in a known order: the one with snapshots is the last of the first page.
    const ids = Array.from({ length: SCAN_PAGE + 1 }, (_, i) => `${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`);
    const chained = { id: ids[SCAN_PAGE - 1]!, size: 1, location: {} };
    chained.location = await driver.createVolume(chained);
    const snapshots = [await newSnapshot(driver, chained), await newSnapshot(driver, chained)];
    for (const id of ids) {
      if (id === chained.id) continue;
      await writeFile(path(`volume-${id}`), '');
      await truncate(path(`volume-${id}`), 2 ** 30);
    }

    const pages: ScanResult[] = [];
    for await (const page of makeDriver('raw').scanPages()) pages.push(page);
    expect(pages.map((p) => p.volumes.length)).toEqual([SCAN_PAGE, 1]);
    expect(pages.flatMap((p) => p.volumes.map((v) => v.id))).toEqual(ids);
    expect(pages[0]!.snapshots.map((s) => s.id).sort()).toEqual(snapshots.map((s) => s.id).sort());
    expect(pages[1]!.snapshots).toEqual([]);
    expect(pages.flatMap((p) => [...p.leftovers, ...p.strays])).toEqual([]);
    // The paged read counted the provisioned bytes: no second read of storage for the stats.
    const reader = makeDriver('raw');
    for await (const _ of reader.scanPages());
    await rm(path(`volume-${ids[0]!}`));
    expect((await reader.stats(false)).provisionedCapacityGb).toBe(SCAN_PAGE + 1);
  });

  it('a scan under way ends when its signal aborts (the agent stops), and a later scan reads everything', async () => {
    const driver = makeDriver();
    for (let i = 0; i < 3; i++) await newVolume(driver);
    const stop = new AbortController();
    const scanning = driver.scan(stop.signal);
    const reason = new Error('the agent stops');
    stop.abort(reason);
    await expect(scanning).rejects.toBe(reason);
    expect((await driver.scan()).volumes).toHaveLength(3);
    expect((await driver.stats(false)).provisionedCapacityGb).toBe(3);
  });

  it('scans, counts and refreshes while volumes are created and deleted, never failing', async () => {
    const driver = makeDriver();
    const kept = await Promise.all([1, 2, 3].map((size) => newVolume(driver, size)));
    let churning = true;
    const reading = (async () => {
      let rounds = 0;
      while (churning || rounds < 3) {
        // A fresh driver counts for the first time while the others change the share.
        await Promise.all([driver.scan(), driver.stats(true), makeDriver().stats(false), makeDriver().scan()]);
        rounds++;
      }
      return rounds;
    })();
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        for (let i = 0; i < 6; i++) {
          const vol = await newVolume(driver);
          await driver.deleteVolume(vol);
        }
      }),
    );
    churning = false;
    expect(await reading).toBeGreaterThanOrEqual(3);
    expect((await driver.stats(false)).provisionedCapacityGb).toBe(6);
    expect((await driver.stats(true)).provisionedCapacityGb).toBe(6);
    const scan = await makeDriver().scan();
    expect(scan.volumes.map((v) => v.id).sort()).toEqual(kept.map((v) => v.id).sort());
    expect(scan.strays).toEqual([]);
    expect(scan.leftovers).toEqual([]);
  });
});

describe('two agents on one share (issue 18, finding 6)', () => {
  let share: string;
  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-shared-scan-'));
  });
  afterEach(async () => {
    onFault(null);
    await rm(share, { recursive: true, force: true });
  });

  let copying!: () => void;
  /** A runner that never returns from a qemu-img convert: the copy in progress, for as long as the test likes. */
  const copyingForever: Runner = (argv, options) => {
    if (!argv.includes('convert')) return run(argv, options);
    copying();
    return new Promise(() => {});
  };
  const agent = (hostId: string, runner: Runner = run) => new NfsDriver(nfsConfig(share), { run: runner, hostId });

  it("reports another agent's work in progress as strays, refuses to remove it, and leaves it to its owner", async () => {
    const a = agent('host-a', copyingForever);
    const source = await newVolume(a);
    const other = await newVolume(a);
    // A's snapshot of `other`, stopped between its overlay and its record (fault points are per process:
    // the first to pass one stops there).
    const overlayMade = new Promise<void>((reached) =>
      onFault(async (point) => {
        if (point !== 'snapshot-create:overlay-made') return;
        onFault(null);
        reached();
        await new Promise(() => {});
      }),
    );
    void a.createSnapshot({ id: randomUUID(), volumeId: other.id, volumeSize: 1, location: {} }, other);
    await overlayMade;
    // A's clone of `source`, held in its copy.
    const copyStarted = new Promise<void>((resolve) => (copying = resolve));
    void a.cloneVolume({ id: randomUUID(), size: 1, location: {} }, source);
    await copyStarted;
    const files = (await readdir(share)).sort();

    const b = agent('host-b');
    const seen = await b.scan();
    expect(seen.leftovers).toEqual([]);
    expect(seen.volumes.map((v) => v.id).sort()).toEqual([source.id, other.id].sort());
    const inProgress = files.filter((n) => /\.part-|tmp-snap-|\.claim-/.test(n) || n.startsWith(`volume-${other.id}.`));
    expect(seen.strays.map((x) => x.where).sort()).toEqual(inProgress.map((n) => join(share, n)).sort());

    // The leftovers agent A's own restart would remove: agent B refuses every one, and nothing changes.
    const mine = await agent('host-a').scan();
    expect(mine.leftovers.map((l) => l.kind).sort()).toEqual(['orphan-overlay', 'partial-volume', 'temp-snapshot']);
    for (const leftover of mine.leftovers) await expect(b.removeLeftover(leftover)).rejects.toThrow();
    expect((await readdir(share)).sort()).toEqual(files);
  });
});

describe('temporary names from before owner tags', () => {
  let share: string;
  beforeEach(async () => {
    share = await mkdtemp(join(tmpdir(), 'kindling-legacy-'));
  });
  afterEach(async () => {
    await rm(share, { recursive: true, force: true });
  });

  it("keep a volume whose record names an untagged temporary snapshot usable, and are nobody's to remove", async () => {
    const driver = new NfsDriver(nfsConfig(share), { run, hostId: TEST_HOST });
    const vol = await newVolume(driver);
    // What a clone by an agent of the last version leaves when it is killed mid-copy.
    const legacy = `tmp-snap-${randomUUID()}`;
    const overlay = `volume-${vol.id}.${legacy}`;
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', `volume-${vol.id}`, join(share, overlay), '1G']);
    await writeFile(join(share, `volume-${vol.id}.info`), JSON.stringify({ active: overlay, [legacy]: overlay }));
    const scan = await driver.scan();
    expect(scan.volumes.map((v) => v.id)).toEqual([vol.id]);
    expect(scan.snapshots).toEqual([]);
    expect(scan.leftovers).toEqual([]);
    expect(scan.strays).toEqual([{ where: join(share, overlay), reason: 'a temporary snapshot that names no owner' }]);
    await expect(driver.removeLeftover({ kind: 'temp-snapshot', id: vol.id, where: join(share, overlay) })).rejects.toThrow(/is not a temp-snapshot leftover/);
    expect((await driver.attach(vol)).path).toBe(join(share, overlay));
  });
});

describe('Provisioned', () => {
  it('replays the changes made while it counts, so a recount neither loses nor resurrects a volume', async () => {
    let finish!: (entries: [string, { share: string; bytes: number }][]) => void;
    const provisioned = new Provisioned(() => new Promise((resolve) => (finish = resolve)));
    const first = provisioned.bytes();
    // The count read storage before these two changes reached it.
    provisioned.set('new', 's', 5);
    provisioned.delete('gone');
    finish([
      ['gone', { share: 's', bytes: 7 }],
      ['old', { share: 's', bytes: 1 }],
    ]);
    expect(await first).toBe(6);

    const refresh = provisioned.bytes(undefined, true);
    provisioned.set('later', 't', 10);
    // Until the recount is done, the figures in use stay up to date.
    expect(await provisioned.bytes('t')).toBe(10);
    finish([['old', { share: 's', bytes: 1 }]]);
    expect(await refresh).toBe(11);
    expect(await provisioned.bytes('s')).toBe(1);
  });

  it('keeps its figures when a recount fails', async () => {
    let count = 0;
    const provisioned = new Provisioned(async () => {
      if (count++ > 0) throw new Error('share gone');
      return [['a', { share: 's', bytes: 3 }]];
    });
    expect(await provisioned.bytes()).toBe(3);
    expect(await provisioned.bytes(undefined, true)).toBe(3);
  });
});
