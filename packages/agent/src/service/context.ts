import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import type { SnapshotRef, VolumeRef } from '../drivers/driver.js';
import type { IndexStore } from '../index/store.js';
import type { Backends } from './backends.js';
import type { EventBus } from './events.js';
import type { KeyedLocks } from '../locks.js';

/** What every resource service shares. */
export interface ServiceContext {
  index: IndexStore;
  backends: Backends;
  events: EventBus;
  locks: KeyedLocks;
  hostname: string;
}

export const volumeRef = (v: VolumeRecord): VolumeRef => ({ id: v.id, size: v.size, location: v.location });
export const snapshotRef = (s: SnapshotRecord): SnapshotRef => ({
  id: s.id,
  volumeId: s.volumeId,
  volumeSize: s.volumeSize,
  location: s.location,
});
