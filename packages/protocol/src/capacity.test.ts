import { describe, expect, it } from 'vitest';
import { roomFor, roomGbOf } from './capacity.js';
import type { BackendStats } from './records.js';

const thick = { total: 100, free: 15, provisioned: 85, thin: false, maxOverSubscriptionRatio: 20, reservedPercentage: 10 };

describe('the capacity rule', () => {
  it('hands out no part of the reserve on thick storage', () => {
    expect(roomFor(thick)).toBe(5);
    expect(roomFor({ ...thick, reservedPercentage: 0 })).toBe(15);
    expect(roomFor({ ...thick, free: 10 })).toBe(0);
    expect(roomFor({ ...thick, free: 4 })).toBe(0);
  });

  it('lets thin storage over-subscribe, less what is provisioned and the reserve, until free space reaches the reserve', () => {
    const thin = { total: 100, free: 50, provisioned: 300, thin: true, maxOverSubscriptionRatio: 4, reservedPercentage: 10 };
    expect(roomFor(thin)).toBe(90);
    expect(roomFor({ ...thin, provisioned: 500 })).toBe(0);
    expect(roomFor({ ...thin, free: 10 })).toBe(0);
  });

  it('gives nothing on storage of no size', () => {
    expect(roomFor({ ...thick, total: 0, free: 0 })).toBe(0);
  });

  it("takes the agent's largest fitting volume over the backend's sums when it reports one", () => {
    const stats: BackendStats = {
      backendName: 'nfs', driver: 'nfs', vendorName: '', driverVersion: '', storageProtocol: 'nfs',
      totalCapacityGb: 200, freeCapacityGb: 30, provisionedCapacityGb: 170, thinProvisioningSupport: false, thickProvisioningSupport: true,
      maxOverSubscriptionRatio: 20, reservedPercentage: 10, totalVolumes: 3, totalSnapshots: 0,
    };
    expect(roomGbOf(stats)).toBe(10);
    expect(roomGbOf({ ...stats, maxVolumeSizeGb: 4 })).toBe(4);
  });
});
