import { describe, expect, it } from 'vitest';
import type { BackendStats } from '@kindling/protocol';
import { rank, roomGb, type Candidate } from './placement.js';

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

const thin = { thinProvisioningSupport: true, thickProvisioningSupport: false };
const candidate = (order: string, over: Partial<BackendStats>, pendingGb = 0, pendingVolumes = 0): Candidate<string> => ({
  key: order,
  stats: stats(over),
  pendingGb,
  pendingVolumes,
  order,
});

describe('roomGb', () => {
  it('thick: free space beyond the reserve', () => {
    expect(roomGb(stats({ freeCapacityGb: 60, reservedPercentage: 10 }))).toBe(50);
  });

  it('thin: the over-subscribed total less what is provisioned and the reserve, whatever is free', () => {
    expect(roomGb(stats({ ...thin, freeCapacityGb: 40, provisionedCapacityGb: 150, maxOverSubscriptionRatio: 2 }))).toBe(50);
  });

  it('nothing once free space is inside the reserve, thin or thick', () => {
    expect(roomGb(stats({ ...thin, freeCapacityGb: 70, reservedPercentage: 99.9, maxOverSubscriptionRatio: 20 }))).toBe(0);
    expect(roomGb(stats({ freeCapacityGb: 5, reservedPercentage: 10 }))).toBe(0);
  });

  it('never negative, and nothing on a backend that reports no capacity', () => {
    expect(roomGb(stats({ ...thin, provisionedCapacityGb: 500 }))).toBe(0);
    expect(roomGb(stats({ totalCapacityGb: 0, freeCapacityGb: 0 }))).toBe(0);
  });
});

describe('rank', () => {
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
