// Thick revert on a real kernel: lvm2's merge frees the snapshot's COW store as it is, holding the
// volume's old blocks. The driver re-creates the snapshot on exactly those extents, so the old data stays
// inside this volume's own snapshot and that snapshot's delete zeroes it. Read on the PV itself: the old
// COW store's extents hold the old data (P) only inside the re-created snapshot, and nowhere once it is gone.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type Backend } from '@kindling/sdk';
import { whileAttached } from './data.js';
import { guestSh, guestWritePattern, kernelEnv } from './kernel.js';

const VG = 'kindling-suite-thick';
const MIB = 1 << 20;
// P and Q over the first 64 MiB: enough COW chunks to span more than one 4 MiB extent of the store.
const SPAN = 64 * MIB;
// The COW store fills from its start: P's copies lie in its first extents (64 MiB and the exception tables).
const SCANNED = 32;
// Several PV reads in a software-emulated guest.
const SLOW = 420_000;

interface Extent {
  pv: string;
  pe: number;
}

/** The PV extents an LV's segments cover (a thick snapshot's: its COW store's). */
async function extentsOf(lv: string): Promise<Extent[]> {
  const ranges = (await guestSh(`lvs --noheadings -o seg_pe_ranges ${VG}/${lv}`)).trim().split(/\s+/).filter(Boolean);
  return ranges.flatMap((r) => {
    const m = /^(\/[^:]+):(\d+)-(\d+)$/.exec(r);
    if (!m) throw new Error(`unexpected PE range ${r}`);
    const [first, last] = [Number(m[2]), Number(m[3])];
    return Array.from({ length: last - first + 1 }, (_, i) => ({ pv: m[1]!, pe: first + i }));
  });
}

/** Which of `extents` hold `marker` somewhere, read straight from the PV (O_DIRECT). */
async function holding(extents: Extent[], marker: string): Promise<Extent[]> {
  if (extents.length === 0) return [];
  const pv = extents[0]!.pv;
  const extent = Number((await guestSh(`vgs --noheadings --units b --nosuffix -o vg_extent_size ${VG}`)).trim());
  const peStart = Number((await guestSh(`pvs --noheadings --units b --nosuffix -o pe_start ${pv}`)).trim());
  const list = extents.map((e) => e.pe).join(' ');
  const out = await guestSh(
    `for pe in ${list}; do dd if=${pv} bs=${extent} skip=$((${peStart} + pe * ${extent})) count=1 iflag=direct,skip_bytes status=none | grep -q -a '${marker}' && echo $pe; done; true`,
    600_000,
  );
  return out.split('\n').filter(Boolean).map((pe) => ({ pv, pe: Number(pe) }));
}

const key = (e: Extent): string => `${e.pv}:${e.pe}`;

/**
 * Runs in the `suite-thick` file, after the functional suite: it reads and counts the same backend, so it
 * cannot run beside that suite in a file of its own.
 */
export function thickRevertSuite(): void {
  describe('thick revert (real kernel): the old COW store never frees the old data unzeroed', () => {
    let agent: Agent;
    let thick: Backend;

    beforeAll(async () => {
      const env = kernelEnv();
      agent = await Agent.connect(env.url, { token: env.token });
      thick = await agent.backend('suite-thick');
    });

    afterAll(async () => {
      await agent?.close();
    });

    it('write P, snapshot, write Q, revert: P only in the volume and its own snapshot, then only in the volume', async () => {
      const P = `kindling-p-${randomUUID()}`;
      const vol = await thick.createVolume({ size: 1 });
      await whileAttached(vol, (conn) => guestWritePattern(conn.path!, P, SPAN, 0));
      const snap = await vol.createSnapshot();
      // Q over P: the kernel copies P's chunks into the snapshot's COW store first.
      await whileAttached(vol, (conn) => guestWritePattern(conn.path!, `kindling-q-${randomUUID()}`, SPAN, 0));
      const oldCow = await holding((await extentsOf(`_snapshot-${snap.id}`)).slice(0, SCANNED), P);
      expect(oldCow.length).toBeGreaterThan(1);

      await vol.revertToSnapshot(snap);
      await vol.refresh();
      expect(vol.status).toBe('available');
      const volume = await whileAttached(vol, (conn) => guestSh(`dd if=${conn.path!} bs=1M count=1 iflag=direct status=none | head -c ${P.length}`));
      expect(volume).toBe(P);

      // Before the snapshot's delete: every old COW extent (of those that held P) still holding P is inside the re-created snapshot.
      const own = new Set((await extentsOf(`_snapshot-${snap.id}`)).map(key));
      const stillP = await holding(oldCow, P);
      expect(stillP.filter((e) => !own.has(key(e)))).toEqual([]);

      // After it (volumeClear: zero): no old COW extent holds P any more.
      await snap.delete();
      expect(await holding(oldCow, P)).toEqual([]);
      await vol.delete();
    }, SLOW);
  });
}
