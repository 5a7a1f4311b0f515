import type { Agent } from '@kindling/sdk';
import type { EventFrame } from './records.js';

export type Outcome<T, B> = { done: T } | { began: B };

/**
 * With `wait`, the call's result. Without, whichever comes first: the agent's push showing the work
 * began (`began` picks it out), or the result. The agent carries the work on after this client
 * hangs up, so the command can leave as soon as it knows the work is under way.
 */
export function untilStarted<T, B>(agent: Agent, call: Promise<T>, wait: boolean, began: (frame: EventFrame) => B | undefined): Promise<Outcome<T, B>> {
  if (wait) return call.then((done) => ({ done }));
  return new Promise((resolve, reject) => {
    const onEvent = (frame: EventFrame) => {
      const record = began(frame);
      if (record === undefined) return;
      agent.off('event', onEvent);
      resolve({ began: record });
    };
    agent.on('event', onEvent);
    call.then(
      (done) => {
        agent.off('event', onEvent);
        resolve({ done });
      },
      (err: unknown) => {
        agent.off('event', onEvent);
        reject(err);
      },
    );
  });
}
