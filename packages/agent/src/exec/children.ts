/** What the registry needs of a running command: a way to end it. */
export interface Child {
  kill(): void;
}

/**
 * The commands one agent has running, so a stop can count them and end them all. Once ended it
 * refuses new ones: an operation queued behind a lock must fail, not start a copy after the stop.
 */
export class Children {
  private readonly running = new Set<Child>();
  private endedAll = false;

  get count(): number {
    return this.running.size;
  }

  /** True once `endAll` ran: commands are refused from then on. */
  get ended(): boolean {
    return this.endedAll;
  }

  /** Tracks a started command until the returned function is called (when it has exited). */
  add(child: Child): () => void {
    this.running.add(child);
    return () => this.running.delete(child);
  }

  /** Ends every running command (their callers see a failure) and refuses new ones. */
  endAll(): void {
    this.endedAll = true;
    for (const child of this.running) child.kill();
  }
}
