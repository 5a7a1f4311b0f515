// Issue 22's "done when" on a real kernel: `kindling volume migrate <vol> --to <agent>/<backend>`, the real CLI
// run in the guest over two agents, moves a 1 GiB volume with data from thin LVM on the lane's agent to NFS on a
// second agent and back; sha256 over the whole content is equal at each step, the name and metadata travel with
// it, and each move leaves nothing behind where the volume was.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent, Backend, Volume } from '@kindling/sdk';
import { guestLvs, guestProbe } from './support/data.js';
import { guestSh } from './support/kernel.js';
import { MAIN_URL, MOVE, SLOW, cliContentSha, contentSha, fillMixed, kindling, startMoveAgent, stopMoveAgent } from './support/move.js';

interface VolumeJson {
  kind: string;
  id: string;
  name: string | null;
  status: string;
  backend: string;
  size: number;
  metadata: Record<string, string>;
}

describe('kindling volume migrate between two agents (real kernel)', () => {
  let agent: Agent;
  let thin: Backend;
  const made: Volume[] = [];

  beforeAll(async () => {
    await startMoveAgent();
    agent = await guestProbe('lvm-thin').connect();
    thin = await agent.backend('lvm-thin');
  }, SLOW);

  afterAll(async () => {
    for (const vol of made) await vol.delete().catch(() => undefined);
    await agent?.close();
    await stopMoveAgent();
  });

  const onThin = async (id: string): Promise<Volume[]> => thin.volumesFiltered({ volumeId: id });

  it('moves a 1 GiB thin LVM volume to NFS on another agent and back: the same bytes each time', async () => {
    const source = await thin.createVolume({ size: 1, name: 'cli-move', metadata: { app: 'lane' } });
    made.push(source);
    await fillMixed(source);
    const sha = await contentSha(source);

    const there = (await kindling(['volume', 'migrate', source.id, '--to', `${MOVE.hostId}/${MOVE.backend}`])) as unknown as VolumeJson;
    expect(there).toMatchObject({ kind: 'volume', name: 'cli-move', status: 'available', backend: MOVE.backend, size: 1, metadata: { app: 'lane' } });
    expect(there.id).not.toBe(source.id);
    // the first agent holds it no more, neither in its index nor on storage
    expect(await onThin(source.id)).toEqual([]);
    expect((await guestLvs('kindling-thin')).map((lv) => lv.lv_name)).not.toContain(`volume-${source.id}`);
    expect(await cliContentSha(there.id)).toBe(sha);

    const back = (await kindling(['volume', 'migrate', there.id, '--to', `${MAIN_URL}/lvm-thin`])) as unknown as VolumeJson;
    expect(back).toMatchObject({ kind: 'volume', name: 'cli-move', status: 'available', backend: 'lvm-thin', size: 1, metadata: { app: 'lane' } });
    const [returned] = await onThin(back.id);
    made.push(returned!);
    expect(await contentSha(returned!)).toBe(sha);
    // nothing is left on the second agent's share: neither the moved volume nor a partial file
    expect((await guestSh('ls -A /export/move')).trim()).toBe('');
  }, SLOW * 2);
});
