import { randomUUID } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { VolumeRecord } from '@kindling/protocol';
import { IndexStore } from '../index/store.js';
import { volumeRecord } from './records.js';

export interface Dataset {
  /** Every volume id, in the order written (names `vol-<i>` follow it). */
  ids: string[];
}

export interface DatasetOptions {
  /** A local-folder NFS share (format raw): each volume gets its sparse 1 GiB file there, so a scan finds it. */
  share?: string;
  /** The metadata every record carries (its size sets the bytes per record a listing moves). */
  metadata?: Record<string, string>;
}

/** How many records go to the index at once: the batches in flight while files are made. */
const CHUNK = 500;

/**
 * `count` available volumes of backend `nfs` written straight into the index under `dataDir` (the way
 * `reindex` adopts a share), with matching sparse files when a share is given: a large agent in seconds
 * for the scale test and bench, without a create per volume. The agent must be stopped meanwhile.
 */
export async function writeVolumeDataset(dataDir: string, count: number, options: DatasetOptions = {}): Promise<Dataset> {
  const index = await IndexStore.open(join(dataDir, 'index'));
  const ids: string[] = [];
  const { share } = options;
  try {
    if (share) await mkdir(share, { recursive: true });
    for (let i = 0; i < count; i += CHUNK) {
      const chunk = Array.from({ length: Math.min(CHUNK, count - i) }, (_, j) => {
        const id = randomUUID();
        const location: VolumeRecord['location'] = share ? { share, format: 'raw', activeFile: `volume-${id}` } : {};
        return volumeRecord(id, { name: `vol-${i + j}`, metadata: options.metadata ?? {}, location });
      });
      await Promise.all(chunk.map(async (record) => {
        if (share) await sparseFile(join(share, `volume-${record.id}`));
        await index.putVolume(record);
      }));
      ids.push(...chunk.map((r) => r.id));
    }
  } finally {
    await index.close();
  }
  return { ids };
}

async function sparseFile(path: string): Promise<void> {
  const file = await open(path, 'wx');
  try {
    await file.truncate(1024 ** 3);
  } finally {
    await file.close();
  }
}
