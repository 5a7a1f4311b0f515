import { MAX_LIST_LIMIT, type Change, type ChangePosition, type OpArgs, type OpResult } from '@kindling/protocol';

/**
 * Where an identity map is in its agent's change sequence: set from the first hello, moved on by the
 * sequence pushes carry and by a resync. While a resync runs, pushes do not move it (a drop in the
 * middle must resync from the old place again); the furthest they reached is taken once it is done.
 */
export class ChangeCursor {
  #at: ChangePosition | null = null;
  #resyncing = false;
  #pushedTo = 0;

  get position(): ChangePosition | null {
    return this.#at;
  }

  /** The first hello of this map: a later one (after a drop) must not skip the changes missed meanwhile. */
  begin(at: ChangePosition | undefined): boolean {
    if (this.#at !== null || at === undefined) return false;
    this.#at = { ...at };
    return true;
  }

  pushed(seq: number | undefined): void {
    if (seq === undefined || this.#at === null) return;
    if (this.#resyncing) this.#pushedTo = Math.max(this.#pushedTo, seq);
    else this.#at.seq = Math.max(this.#at.seq, seq);
  }

  /** Runs one resync; `reached` is where it brought the map (null: the agent keeps no sequence). */
  async resync(work: () => Promise<ChangePosition | null>): Promise<void> {
    this.#resyncing = true;
    this.#pushedTo = 0;
    try {
      const reached = await work();
      // Pushes during the resync came over the new session: of the same index as `reached`.
      this.#at = reached && { epoch: reached.epoch, seq: Math.max(reached.seq, this.#pushedTo) };
    } finally {
      this.#resyncing = false;
    }
  }
}

/**
 * Every change after `from`, page by page, applied as each page comes; the position reached, or null
 * when the agent's retained history does not reach back to `from` (the caller reads everything instead).
 */
export async function readChanges(
  list: (args: OpArgs<'changes.list'>) => Promise<OpResult<'changes.list'>>,
  from: ChangePosition,
  apply: (change: Change) => void,
): Promise<ChangePosition | null> {
  let cursor: string | undefined;
  for (;;) {
    const page = await list({ epoch: from.epoch, since: from.seq, limit: MAX_LIST_LIMIT, ...(cursor === undefined ? {} : { cursor }) });
    if (page.history === 'gone') return null;
    page.changes.forEach(apply);
    if (page.nextCursor === null) return { epoch: page.epoch, seq: page.seq };
    cursor = page.nextCursor;
  }
}
