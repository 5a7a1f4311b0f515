import { status } from '@grpc/grpc-js';
import type { Fleet, Snapshot } from '@kindling/sdk';
import { CsiError, notFound, required } from './errors.js';
import { parseSnapshotHandle, parseVolumeHandle } from './ids.js';
import type { InFlight } from './locks.js';
import { page } from './paging.js';
import { csiSnapshot, volumeIdOf } from './present.js';
import { pageOverFleet } from './listing.js';
import type { Router } from './router.js';
import type { CreateSnapshotRequest, ListSnapshotsRequest } from './types.js';

/** The Controller's snapshot RPCs. Snapshot names are the Kindling snapshots' names, found by listing. */
export class SnapshotRpcs {
  constructor(
    private readonly fleet: Fleet,
    private readonly router: Router,
    private readonly inFlight: InFlight,
  ) {}

  async createSnapshot(req: CreateSnapshotRequest) {
    const name = required(req.name, 'name');
    const sourceId = required(req.sourceVolumeId, 'source_volume_id');
    return this.inFlight.run([`snapshot-name:${name}`, `volume:${sourceId}`], async () => {
      const ref = parseVolumeHandle(sourceId);
      if (!ref) throw notFound(`volume ${sourceId} does not exist`);
      const existing = await this.#byName(name, ref.hostId);
      if (existing) {
        const host = this.router.hostOf(existing);
        if (volumeIdOf(existing.volume, host) !== sourceId) throw new CsiError(status.ALREADY_EXISTS, `snapshot ${name} exists for another volume`);
        return { snapshot: csiSnapshot(existing, host) };
      }
      const volume = await this.router.volume(ref);
      if (!volume) throw notFound(`volume ${sourceId} does not exist`);
      const snapshot = await volume.createSnapshot({ name });
      return { snapshot: csiSnapshot(snapshot, ref.hostId) };
    });
  }

  /**
   * The live snapshot made under this CSI name; a failed earlier attempt is removed so the create can
   * run again. The source's host must answer (the snapshot lives there); another host that is down
   * only cannot say whether it holds the name for another volume, which must not stop this one.
   */
  async #byName(name: string, hostId: string): Promise<Snapshot | null> {
    // Each agent answers from its own records with the few of that name: a bounded query, not a listing.
    const { snapshots, failed } = await this.fleet.snapshots({ name });
    const source = failed.find((f) => f.hostId === hostId || f.hostId === null);
    if (source) throw new CsiError(status.UNAVAILABLE, `the agent that may hold host ${hostId} did not answer (${source.url}): ${source.error.message}`);
    const named = snapshots.filter((s) => s.status !== 'deleted');
    for (const s of named) {
      if (s.status === 'creating') throw new CsiError(status.ABORTED, `snapshot ${name} is still being taken`);
      if (s.status === 'error') await s.delete();
    }
    return named.find((s) => s.status !== 'error' && s.status !== 'deleted') ?? null;
  }

  async deleteSnapshot(req: { snapshotId: string }): Promise<Record<string, never>> {
    const id = required(req.snapshotId, 'snapshot_id');
    return this.inFlight.run([`snapshot:${id}`], async () => {
      const ref = parseSnapshotHandle(id);
      const snapshot = ref && (await this.router.snapshot(ref));
      if (snapshot) await snapshot.delete();
      return {};
    });
  }

  async listSnapshots(req: ListSnapshotsRequest) {
    let snapshots: Snapshot[];
    if (req.snapshotId) {
      // A filter naming nothing that exists lists nothing (the spec: not an error).
      const ref = parseSnapshotHandle(req.snapshotId);
      const one = ref && (await this.router.snapshot(ref));
      snapshots = one ? [one] : [];
    } else if (req.sourceVolumeId) {
      const ref = parseVolumeHandle(req.sourceVolumeId);
      const volume = ref && (await this.router.volume(ref));
      snapshots = volume ? [...volume.snapshots] : [];
    } else {
      const { entries, nextToken } = await pageOverFleet(this.fleet, req, async (backend, limit, cursor) => {
        const { snapshots: items, nextCursor } = await backend.snapshotPage({ limit, cursor });
        return { items, nextCursor };
      });
      return { entries: entries.map(({ item, hostId }) => ({ snapshot: csiSnapshot(item, hostId) })), nextToken };
    }
    const listed = snapshots.filter((s) => s.status !== 'deleted').map((s) => csiSnapshot(s, this.router.hostOf(s)));
    const filtered = req.sourceVolumeId ? listed.filter((s) => s.sourceVolumeId === req.sourceVolumeId) : listed;
    const { entries, nextToken } = page(filtered, (s) => s.snapshotId, req, (t) => parseSnapshotHandle(t) !== null);
    return { entries: entries.map((snapshot) => ({ snapshot })), nextToken };
  }
}
