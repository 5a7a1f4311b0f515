// What the soak knows: the records as last read from the agent (to pick valid operations on idle
// resources), and what acknowledged replies promise (to count what a crash lost or brought back).

const MAX_VOLUMES = 10;
const MAX_SNAPSHOTS = 3;
const MAX_SIZE = 3;

export class Model {
  /** id -> { id, backend, size, status, snapshots: ids oldest first } */
  volumes = new Map();
  /** id -> { id, volumeId, status } */
  snapshots = new Map();
  /** Resources an operation in flight works on. */
  busy = new Set();
  /** Acknowledged as made and not deleted since: id -> { kind, minSize } */
  promised = new Map();
  /** Acknowledged as deleted. */
  deleted = new Set();
  /** id -> the byte patterns the first MiB may read as (more than one after an interrupted revert); kept across loads. */
  patterns = new Map();

  /** Replaces what is known of the records with the agent's listing (after a restart). */
  load({ volumes, snapshots }) {
    this.volumes.clear();
    this.snapshots.clear();
    for (const v of volumes) this.volumes.set(v.id, { id: v.id, backend: v.backend, size: v.size, status: v.status, snapshots: [] });
    for (const s of [...snapshots].sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
      this.snapshots.set(s.id, { id: s.id, volumeId: s.volumeId, status: s.status });
      this.volumes.get(s.volumeId)?.snapshots.push(s.id);
    }
  }

  /** A resource an operation failed on is left alone until the next listing says what it is. */
  forget(ids) {
    for (const id of ids) {
      const snap = this.snapshots.get(id);
      if (snap) snap.status = 'unknown';
      const vol = this.volumes.get(id);
      if (vol) vol.status = 'unknown';
    }
  }

  /** A random valid operation on idle resources: { name, op, args, uses, ok(result), cut() }, or null. */
  pick(rng, backends) {
    const idle = (id) => !this.busy.has(id);
    const vols = [...this.volumes.values()].filter((v) => idle(v.id));
    const ready = vols.filter((v) => v.status === 'available');
    const snapOf = (v, pred) => v.snapshots.map((id) => this.snapshots.get(id)).filter((s) => s && idle(s.id) && pred(s));
    const choices = [];
    const add = (weight, make) => choices.push({ weight, make });
    const any = (list) => list[Math.floor(rng() * list.length)];

    if (this.volumes.size < MAX_VOLUMES) {
      add(3, () => this.#made('create', 'volume.create', { backend: any(backends), size: 1 }, [], null));
    }
    if (ready.length) {
      const v = any(ready);
      const pattern = 1 + Math.floor(rng() * 255);
      // Not an agent operation: the soak writes the volume's file itself, the volume marked busy meanwhile.
      add(2, () => ({ name: 'write', op: 'write', args: { id: v.id, backend: v.backend, pattern }, uses: [v.id], ok: () => this.patterns.set(v.id, [pattern]), cut: () => {} }));
    }
    if (ready.length && this.volumes.size < MAX_VOLUMES) {
      const src = any(ready);
      add(2, () => this.#made('clone', 'volume.clone', { id: src.id }, [src.id], src.id));
    }
    const snappable = ready.filter((v) => v.snapshots.length < MAX_SNAPSHOTS);
    if (snappable.length) {
      const v = any(snappable);
      add(2, () => ({
        name: 'snapshot',
        op: 'snapshot.create',
        args: { volumeId: v.id },
        uses: [v.id],
        ok: (s) => {
          this.snapshots.set(s.id, { id: s.id, volumeId: v.id, status: s.status });
          v.snapshots.push(s.id);
          this.promised.set(s.id, { kind: 'snapshot', minSize: 0 });
          this.#inherit(s.id, v.id);
        },
        cut: () => {},
      }));
    }
    const withSnap = ready.filter((v) => snapOf(v, (s) => s.status === 'available').length);
    if (withSnap.length && this.volumes.size < MAX_VOLUMES) {
      const v = any(withSnap);
      const s = any(snapOf(v, (x) => x.status === 'available'));
      add(2, () => this.#made('from-snapshot', 'snapshot.createVolume', { id: s.id }, [s.id, v.id], s.id));
    }
    const revertible = ready.filter((v) => {
      const latest = this.snapshots.get(v.snapshots.at(-1));
      return latest && latest.status === 'available' && idle(latest.id);
    });
    if (revertible.length) {
      const v = any(revertible);
      const s = v.snapshots.at(-1);
      add(1, () => ({
        name: 'revert',
        op: 'volume.revert',
        args: { id: v.id, snapshotId: s },
        uses: [v.id, s],
        ok: () => this.#inherit(v.id, s),
        // Reverted or not: either data is right until a check reads which.
        cut: () => this.patterns.set(v.id, [...(this.patterns.get(v.id) ?? []), ...(this.patterns.get(s) ?? [])]),
      }));
    }
    const growable = ready.filter((v) => v.size < MAX_SIZE);
    if (growable.length) {
      const v = any(growable);
      const size = v.size + 1;
      add(1, () => ({
        name: 'extend',
        op: 'volume.extend',
        args: { id: v.id, size },
        uses: [v.id],
        ok: () => {
          v.size = size;
          const promise = this.promised.get(v.id);
          if (promise) promise.minSize = size;
        },
        cut: () => {},
      }));
    }
    // Deletes take whatever a crash left (error, error_deleting) as well as settled resources.
    const deletableSnaps = vols.flatMap((v) => snapOf(v, (s) => s.status !== 'unknown'));
    if (deletableSnaps.length) {
      const s = any(deletableSnaps);
      add(this.snapshots.size > 6 ? 4 : 2, () => this.#deleted('snapshot delete', 'snapshot.delete', s.id, [s.id, s.volumeId]));
    }
    const bare = vols.filter((v) => v.snapshots.length === 0 && v.status !== 'unknown');
    if (bare.length) {
      const v = any(bare);
      add(this.volumes.size > 6 ? 4 : 1, () => this.#deleted('delete', 'volume.delete', v.id, [v.id]));
    }
    if (!choices.length) return null;
    let roll = rng() * choices.reduce((sum, c) => sum + c.weight, 0);
    for (const c of choices) if ((roll -= c.weight) < 0) return c.make();
    return choices.at(-1).make();
  }

  /**
   * The data a resource must read: what the index says it came from holds (a clone its source's, a
   * volume from a snapshot the snapshot's, a snapshot its volume's), else zeros for a new volume.
   * Sources are busy while copied from, so what they hold now is what was copied.
   */
  expectedData(record) {
    const from = record.sourceVolId ?? record.snapshotId ?? record.volumeId ?? null;
    return this.patterns.get(record.id) ?? (from === null ? [0] : (this.patterns.get(from) ?? []));
  }

  #inherit(id, from) {
    this.patterns.set(id, [...(this.patterns.get(from) ?? [])]);
  }

  #made(name, op, args, uses, from) {
    return {
      name,
      op,
      args,
      uses,
      ok: (v) => {
        this.volumes.set(v.id, { id: v.id, backend: v.backend, size: v.size, status: v.status, snapshots: [] });
        this.promised.set(v.id, { kind: 'volume', minSize: v.size });
        if (from === null) this.patterns.set(v.id, [0]);
        else this.#inherit(v.id, from);
      },
      cut: () => {},
    };
  }

  #deleted(name, op, id, uses) {
    return {
      name,
      op,
      args: { id },
      uses,
      ok: () => {
        const snap = this.snapshots.get(id);
        if (snap) {
          this.snapshots.delete(id);
          const vol = this.volumes.get(snap.volumeId);
          if (vol) vol.snapshots = vol.snapshots.filter((s) => s !== id);
        }
        this.volumes.delete(id);
        this.promised.delete(id);
        this.patterns.delete(id);
        this.deleted.add(id);
      },
      // Cut mid-delete: gone or not, either is right; nothing is promised about it any more.
      cut: () => this.promised.delete(id),
    };
  }
}
