import { describe, expect, it } from 'vitest';
import { parseSnapshotHandle, parseVolumeHandle, snapshotHandle, volumeHandle } from './ids.js';

const vol = { hostId: 'worker 1:rack/2', backend: 'lvm-thin.a_1', volumeId: '0a1b2c3d-0000-4000-8000-123456789abc' };

describe('volume and snapshot ids', () => {
  it('carry host, backend and uuids through a round trip, whatever the host id holds', () => {
    const id = volumeHandle(vol);
    expect(id).toBe('worker%201%3Arack%2F2:lvm-thin.a_1:0a1b2c3d-0000-4000-8000-123456789abc');
    expect(parseVolumeHandle(id)).toEqual(vol);
    const snap = { ...vol, snapshotId: 'ffffffff-0000-4000-8000-123456789abc' };
    expect(parseSnapshotHandle(snapshotHandle(snap))).toEqual(snap);
  });

  it('are not mistaken for one another', () => {
    const snap = snapshotHandle({ ...vol, snapshotId: 'ffffffff-0000-4000-8000-123456789abc' });
    expect(parseVolumeHandle(snap)).toBeNull();
    expect(parseSnapshotHandle(volumeHandle(vol))).toBeNull();
  });

  it.each(['', 'x', 'a:b:c', 'host:nfs:not-a-uuid', 'host:bad name:0a1b2c3d-0000-4000-8000-123456789abc', '%zz:nfs:0a1b2c3d-0000-4000-8000-123456789abc', 'a%3a:nfs:0a1b2c3d-0000-4000-8000-123456789abc'])(
    'refuse %j as never made here',
    (text) => {
      expect(parseVolumeHandle(text)).toBeNull();
    },
  );
});
