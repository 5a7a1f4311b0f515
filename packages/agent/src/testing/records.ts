import type { ConnectionRecord, SnapshotRecord, VolumeRecord } from '@kindling/protocol';

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

/** A snapshot record of `volumeId` as the index holds it; `over` changes any field. */
export const snapshotRecord = (id: string, volumeId: string, over: Partial<SnapshotRecord> = {}): SnapshotRecord => ({
  id,
  backend: 'nfs',
  volumeId,
  name: null,
  description: null,
  volumeSize: 1,
  status: 'available',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  location: {},
  error: null,
  ...over,
});

/** A local attachment record of `volumeId`; `over` changes any field. */
export const connectionRecord = (id: string, volumeId: string, over: Partial<ConnectionRecord> = {}): ConnectionRecord => ({
  id,
  backend: 'nfs',
  volumeId,
  connectorInfo: { host: 'here' },
  connectionInfo: { driverVolumeType: 'local', data: {} },
  path: null,
  attached: true,
  createdAt: '2026-01-01T00:00:00.000Z',
  ...over,
});
