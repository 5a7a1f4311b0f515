import type { EventFrame, Progress } from '@kindling/protocol';
import { requestCost } from '../cost.js';

export type EventListener = (event: EventFrame) => void;

/** Fan-out of resource changes to every connected session (and metrics). */
export class EventBus {
  private readonly listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event: EventFrame): void {
    const started = performance.now();
    for (const listener of this.listeners) listener(event);
    requestCost()?.add('events', started);
  }

  /** How far a long copy has got. */
  progress = (resource: Progress): void => this.publish({ event: 'progress', resource });
}
