import { EventEmitter } from 'node:events';

export type StatusEvents<S extends string> = {
  /** Fired on every change, whether a reply or an agent push brought it. */
  status: [status: S, previous: S];
};

/** A resource with a status that the agent changes under it: compares and emits on each update. */
export abstract class Tracked<S extends string> extends EventEmitter<StatusEvents<S>> {
  declare readonly status: S;

  protected setStatus(next: S): void {
    const previous = this.status;
    if (previous === next) return;
    Object.assign(this, { status: next });
    // The first assignment is construction, not a change.
    if (previous !== undefined) this.emit('status', next, previous);
  }
}
