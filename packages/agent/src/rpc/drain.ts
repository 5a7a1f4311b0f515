/** Counts operations in flight so a stopping agent lets them finish their index writes first. */
export class Drain {
  private running = 0;
  private waiters: (() => void)[] = [];

  /** Operations in flight now (the requests-in-flight gauge). */
  get inFlight(): number {
    return this.running;
  }

  async track<T>(work: Promise<T>): Promise<T> {
    this.running++;
    try {
      return await work;
    } finally {
      this.running--;
      if (this.running === 0) for (const wake of this.waiters.splice(0)) wake();
    }
  }

  /**
   * Whether nothing is in flight, waiting up to `timeoutMs` for that (a stuck command must not
   * block a stop forever).
   */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(wake);
    });
  }
}
