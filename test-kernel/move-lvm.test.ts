// Issue 22 on a real kernel: copies to and from LVM thick and thin. The lane runs one agent in the guest,
// with thick, thin and NFS backends; a copy between two of its backends goes through the same code as one
// between two agents (the SDK sees another backend: `transfer.open` on the source side mints a one-read
// credential, `volume.copyFrom` on the target side pulls the stream over HTTP). A 1 GiB volume holding
// random blocks, an allocated zero block and long unwritten ranges goes thin LVM → NFS → thick LVM → thin
// LVM, and from snapshots thin → thick and thick → NFS; sha256 over the whole content is equal at each step,
// and no temporary LV (a read's `clone-snap-`, a write's `partial-`) is left.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent, Backend, Volume } from '@kindling/sdk';
import { guestLvs, guestProbe } from './support/data.js';
import { SLOW, contentSha, fillMixed } from './support/move.js';

/** Kindling's temporary LVs that belong to these volumes: a read's snapshot of one, or one's partial LV. */
async function temporaryLvsOf(vg: string, volumes: Volume[]): Promise<string[]> {
  const ids = volumes.map((v) => v.id);
  return (await guestLvs(vg))
    .filter((lv) => (lv.lv_name.startsWith('clone-snap-') && ids.some((id) => lv.origin === `volume-${id}`)) || ids.some((id) => lv.lv_name === `partial-${id}`))
    .map((lv) => lv.lv_name);
}

describe('copies between LVM thick, thin and NFS backends (real kernel)', () => {
  let agent: Agent;
  let thick: Backend;
  let thin: Backend;
  let nfs: Backend;
  const made: Volume[] = [];
  let sha = '';

  beforeAll(async () => {
    agent = await guestProbe('lvm-thin').connect();
    [thick, thin, nfs] = await Promise.all([agent.backend('lvm-thick'), agent.backend('lvm-thin'), agent.backend('nfs')]);
  });

  afterAll(async () => {
    for (const vol of made.reverse()) {
      for (const snap of [...vol.snapshots]) await snap.delete().catch(() => undefined);
      await vol.delete().catch(() => undefined);
    }
    await agent?.close();
  });

  const keep = (vol: Volume): Volume => {
    made.push(vol);
    return vol;
  };

  const expectNoTemporaries = async () => {
    expect(await temporaryLvsOf('kindling-thin', made)).toEqual([]);
    expect(await temporaryLvsOf('kindling-thick', made)).toEqual([]);
  };

  it('copies a thin volume to NFS, the NFS copy to thick, the thick copy to thin: the same bytes each time', async () => {
    const source = keep(await thin.createVolume({ size: 1, name: 'move-source' }));
    await fillMixed(source);
    sha = await contentSha(source);

    const onNfs = keep(await source.clone({ backend: nfs }));
    expect(onNfs.backend).toBe(nfs);
    expect(await contentSha(onNfs)).toBe(sha);

    const onThick = keep(await onNfs.clone({ backend: thick }));
    expect(onThick.status).toBe('available');
    expect(await contentSha(onThick)).toBe(sha);

    const backOnThin = keep(await onThick.clone({ backend: thin }));
    expect(await contentSha(backOnThin)).toBe(sha);
    await expectNoTemporaries();
  }, SLOW * 2);

  it('makes volumes on another backend from thin and thick snapshots', async () => {
    const [source, , onThick] = made;
    const thinSnap = await source!.createSnapshot();
    const fromThinSnap = keep(await thinSnap.createVolume({ backend: thick }));
    expect(await contentSha(fromThinSnap)).toBe(sha);

    const thickSnap = await onThick!.createSnapshot();
    const fromThickSnap = keep(await thickSnap.createVolume({ backend: nfs }));
    expect(await contentSha(fromThickSnap)).toBe(sha);
    await expectNoTemporaries();
  }, SLOW * 2);
});
