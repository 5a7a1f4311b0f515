/**
 * One chain operation per volume at a time, as cinder's locked_volume_id_operation: clones and
 * volumes-from-snapshot change or read the *source* volume's chain and `.info` record, which the
 * service's lock on the new volume does not cover.
 */
export class VolumeLock {
  private readonly tails = new Map<string, Promise<void>>();

  async with<T>(volumeId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(volumeId) ?? Promise.resolve();
    const current = previous.then(work);
    const tail = current.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(volumeId, tail);
    try {
      return await current;
    } finally {
      if (this.tails.get(volumeId) === tail) this.tails.delete(volumeId);
    }
  }
}
