type Sizes = Map<string, { share: string; bytes: number }>;
/** A read of storage: each volume's bytes by share. */
export type Counted = [string, { share: string; bytes: number }][];
type Change = (sizes: Sizes) => void;

/**
 * Bytes provisioned per volume (its virtual size), by share: the stats' and share choice's input.
 * Counted from storage once, then kept up to date by each operation after it changed storage. A
 * recount (a refresh) runs beside the operations: every change made while it reads storage is
 * replayed on its result, so a volume created or deleted during the count is neither lost nor
 * resurrected, and the figures in use stay valid until the recount is done.
 */
export class Provisioned {
  private sizes: Sizes | null = null;
  private counting: Promise<Sizes> | null = null;
  private replay: Change[] = [];

  constructor(private readonly count: () => Promise<Counted>) {}

  set(volumeId: string, share: string, bytes: number): void {
    this.change((sizes) => sizes.set(volumeId, { share, bytes }));
  }

  delete(volumeId: string): void {
    this.change((sizes) => sizes.delete(volumeId));
  }

  /** On one share, or on all of them; `recount` reads storage again (a failed recount keeps the figures). */
  async bytes(share?: string, recount = false): Promise<number> {
    let sizes: Sizes;
    if (recount) sizes = await this.recount().catch((err: unknown) => this.sizes ?? Promise.reject(err));
    else sizes = this.sizes ?? (await this.recount());
    let sum = 0;
    for (const v of sizes.values()) if (share === undefined || v.share === share) sum += v.bytes;
    return sum;
  }

  // A change before the first count needs no record: that count reads storage after it.
  private change(change: Change): void {
    if (this.sizes) change(this.sizes);
    if (this.counting) this.replay.push(change);
  }

  /**
   * Takes a read of storage that starts now as the first count, when none was made or is running: the
   * start's read of every volume serves both the check after ready and the capacity figures.
   */
  adopt(read: Promise<Counted>): void {
    // The scan's caller hears of its failure; the next figure asked for counts again.
    if (this.sizes === null && this.counting === null) this.begin(read).catch(() => undefined);
    else read.catch(() => undefined);
  }

  private recount(): Promise<Sizes> {
    return this.counting ?? this.begin(this.count());
  }

  private begin(read: Promise<Counted>): Promise<Sizes> {
    this.counting = read.then(
      (entries) => {
        const sizes: Sizes = new Map(entries);
        for (const change of this.replay) change(sizes);
        this.sizes = sizes;
        return sizes;
      },
    ).finally(() => {
      this.counting = null;
      this.replay = [];
    });
    return this.counting;
  }
}
