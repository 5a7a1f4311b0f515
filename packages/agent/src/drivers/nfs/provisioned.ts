/** Bytes provisioned per volume (its virtual size), by share: the stats' and share choice's input. */
export class Provisioned {
  private readonly volumes = new Map<string, { share: string; bytes: number }>();

  set(volumeId: string, share: string, bytes: number): void {
    this.volumes.set(volumeId, { share, bytes });
  }

  delete(volumeId: string): void {
    this.volumes.delete(volumeId);
  }

  /** On one share, or on all of them. */
  bytes(share?: string): number {
    let sum = 0;
    for (const v of this.volumes.values()) if (share === undefined || v.share === share) sum += v.bytes;
    return sum;
  }
}
