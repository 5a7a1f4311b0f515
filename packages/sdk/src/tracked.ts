import { EventEmitter } from 'node:events';
import type { Progress } from '@kindling/protocol';

export type ResourceEvents<S extends string> = {
  /** Fired on every change, whether a reply or an agent push brought it. */
  status: [status: S, previous: S];
  /**
   * How far a long copy has got: one for this resource (the new volume of a clone, once this Agent
   * holds it), or one a call on this object started (the source of a clone, the snapshot a volume is
   * made from, the volume being reverted or zeroed).
   */
  progress: [progress: Progress];
};

/** A resource with a status that the agent changes under it: compares and emits on each update. */
export abstract class Tracked<S extends string> extends EventEmitter<ResourceEvents<S>> {
  #status: S;

  constructor(status: S) {
    super();
    this.#status = status;
  }

  get status(): S {
    return this.#status;
  }

  protected setStatus(next: S): void {
    const previous = this.#status;
    if (previous === next) return;
    this.#status = next;
    this.emit('status', next, previous);
  }
}
