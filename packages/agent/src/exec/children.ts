/** What the registry needs of a running command: a way to end it. */
export interface Child {
  kill(): void;
}

export interface ChildLimits {
  /** Commands running at once; more wait their turn (each holds a few descriptors: none may hit EMFILE). */
  commands: number;
  /** Long data copies running at once, a smaller share of those: they compete for the same disks. */
  copies: number;
}

/** A FIFO of waiters for a counted resource. */
class Slots {
  private used = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly size: number) {}

  get waiting(): number {
    return this.queue.length;
  }

  async take(): Promise<void> {
    if (this.used < this.size) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  give(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.used--;
  }
}

const UNLIMITED: ChildLimits = { commands: Number.MAX_SAFE_INTEGER, copies: Number.MAX_SAFE_INTEGER };

/**
 * The commands one agent has running, so a stop can count them and end them all, and load stays
 * bounded: a command waits for a slot before it starts. Once ended it refuses new ones: an operation
 * queued behind a lock must fail, not start a copy after the stop.
 */
export class Children {
  private readonly running = new Set<Child>();
  private readonly commands: Slots;
  private readonly copies: Slots;
  private endedAll = false;

  constructor(limits: ChildLimits = UNLIMITED) {
    this.commands = new Slots(limits.commands);
    this.copies = new Slots(limits.copies);
  }

  get count(): number {
    return this.running.size;
  }

  /** Commands waiting for a slot. */
  get waiting(): number {
    return this.commands.waiting + this.copies.waiting;
  }

  /** True once `endAll` ran: commands are refused from then on. */
  get ended(): boolean {
    return this.endedAll;
  }

  /** Waits for a slot (a copy takes a copy slot first); the returned function gives it back. */
  async slot(copy: boolean): Promise<() => void> {
    if (copy) await this.copies.take();
    await this.commands.take();
    return () => {
      this.commands.give();
      if (copy) this.copies.give();
    };
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
