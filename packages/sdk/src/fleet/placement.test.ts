import { describe, expect, it } from 'vitest';
import type { BackendStats } from '@kindling/protocol';
import { rank, type Candidate } from './placement.js';

function stats(over: Partial<BackendStats>): BackendStats {
  return {
    backendName: 'b',
    driver: 'nfs',
    vendorName: 'Open Source',
    driverVersion: '1.0',
    storageProtocol: 'nfs',
    totalCapacityGb: 100,
    freeCapacityGb: 100,
    provisionedCapacityGb: 0,
    thinProvisioningSupport: false,
    thickProvisioningSupport: true,
    maxOverSubscriptionRatio: 1,
    reservedPercentage: 0,
    totalVolumes: 0,
    totalSnapshots: 0,
    ...over,
  };
}

const candidate = (order: string, over: Partial<BackendStats>, pendingGb = 0, pendingVolumes = 0): Candidate<string> => ({
  key: order,
  stats: stats(over),
  pendingGb,
  pendingVolumes,
  order,
});

describe('rank', () => {
  it('applies the capacity rule: the reserve is not room, and a backend of several shares has the room of its best one', () => {
    const ranked = rank([candidate('reserved', { freeCapacityGb: 60, reservedPercentage: 50 }), candidate('shares', { maxVolumeSizeGb: 8 })], 9);
    expect(ranked.map((r) => [r.key, r.roomGb])).toEqual([['reserved', 10]]);
  });

  it('most room first, only those where the size fits', () => {
    const ranked = rank([candidate('a', { freeCapacityGb: 30 }), candidate('b', { freeCapacityGb: 80 }), candidate('c', { freeCapacityGb: 5 })], 10);
    expect(ranked.map((r) => [r.key, r.roomGb])).toEqual([
      ['b', 80],
      ['a', 30],
    ]);
  });

  it('equal room (to the GiB) goes to the fewest volumes, then by order', () => {
    const ranked = rank(
      [
        candidate('a', { freeCapacityGb: 50.2, totalVolumes: 7 }),
        candidate('c', { freeCapacityGb: 50.9, totalVolumes: 2 }),
        candidate('b', { freeCapacityGb: 50.1, totalVolumes: 2 }),
      ],
      1,
    );
    expect(ranked.map((r) => r.key)).toEqual(['b', 'c', 'a']);
  });

  it('counts creations still in flight, so parallel creates spread out', () => {
    const ranked = rank([candidate('a', { freeCapacityGb: 50 }, 20, 1), candidate('b', { freeCapacityGb: 40 })], 10);
    expect(ranked.map((r) => [r.key, r.roomGb])).toEqual([
      ['b', 40],
      ['a', 30],
    ]);
  });
});
