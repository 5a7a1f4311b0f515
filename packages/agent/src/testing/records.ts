import type { VolumeRecord } from '@kindling/protocol';

/** A volume record as the index holds it, for tests that need one without storage; `over` changes any field. */
export const volumeRecord = (id: string, over: Partial<VolumeRecord> = {}): VolumeRecord => ({
  id,
  backend: 'nfs',
  name: null,
  description: null,
  size: 1,
  status: 'available',
  metadata: {},
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  sourceVolId: null,
  snapshotId: null,
  location: {},
  error: null,
  ...over,
});
