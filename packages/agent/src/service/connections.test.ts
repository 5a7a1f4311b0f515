import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Services } from '../services.js';
import { tempServices, type TempServices } from '../testing/temp-services.js';

// Local attachments on real NFS-driver storage in a temp dir.
let t: TempServices;
let s: Services;

beforeEach(async () => {
  t = await tempServices('connections');
  s = t.services;
});
afterEach(async () => {
  await t.dispose();
});

describe('attach', () => {
  it('a second attach on this host hands back the attachment it has, not a second one', async () => {
    const volume = await s.volumes.create({ backend: 'nfs', size: 1 });
    const first = await s.connections.attach(volume.id);
    const again = await s.connections.attach(volume.id);
    expect(again.connection).toEqual(first.connection);
    expect(again.volume.status).toBe('in-use');
    expect(s.index.connectionsOf(volume.id).map((c) => c.id)).toEqual([first.connection.id]);

    // One detach undoes it: nothing is left attached.
    expect((await s.connections.detach(volume.id)).volume.status).toBe('available');
    expect(s.index.connectionsOf(volume.id)).toEqual([]);
  });
});
