import { CREATING_OPS, type OpName, type Progress } from '@kindling/protocol';
import type { Origin } from './registry.js';

interface Followed {
  op: OpName;
  origin: Origin | undefined;
  onProgress: ((progress: Progress) => void) | undefined;
  /** Ids of the volumes it is making, learnt from its progress pushes before its reply names them. */
  making: Set<string>;
}

/** Creating calls whose outcome is unknown (TIMEOUT, UNAVAILABLE) stay followed; the oldest are evicted past this. */
const LINGERING_MAX = 256;

/**
 * An identity map's calls that pushes may speak of, by requestId: progress reaches the object the call was
 * made on and the call's `onProgress`, and a creating call learns the id of the volume it makes, so
 * that pushes for that volume are adopted instead of dropped. A creating call that timed out is kept
 * until its late reply, for the work goes on at the agent.
 */
export class Following {
  readonly #calls = new Map<string, Followed>();
  readonly #lingering = new Map<string, Followed>();

  start(requestId: string, op: OpName, origin: Origin | undefined, onProgress: ((progress: Progress) => void) | undefined): void {
    this.#lingering.delete(requestId);
    this.#calls.set(requestId, { op, origin, onProgress, making: new Set() });
  }

  /** `unknownOutcome`: the call ended without a reply (TIMEOUT, UNAVAILABLE), so a creating one may still make something. */
  end(requestId: string, unknownOutcome: boolean): void {
    const followed = this.#calls.get(requestId);
    if (!followed) return;
    this.#calls.delete(requestId);
    if (!unknownOutcome || !CREATING_OPS.has(followed.op)) return;
    this.#lingering.set(requestId, followed);
    for (const oldest of this.#lingering.keys()) {
      if (this.#lingering.size <= LINGERING_MAX) break;
      this.#lingering.delete(oldest);
    }
  }

  /** Its reply came after all: nothing more to follow. */
  settled(requestId: string): void {
    this.#lingering.delete(requestId);
  }

  /** Whether a volume the identity map does not hold is one of its own calls' making. */
  makes(volumeId: string): boolean {
    for (const followed of [...this.#calls.values(), ...this.#lingering.values()]) if (followed.making.has(volumeId)) return true;
    return false;
  }

  /** Emits a progress push on `target` (the resource it is for, when held) and on what the call was made on. */
  progress(progress: Progress, target: Origin | undefined): void {
    target?.emit('progress', progress);
    const { requestId } = progress;
    const followed = requestId === undefined ? undefined : (this.#calls.get(requestId) ?? this.#lingering.get(requestId));
    if (!followed) return;
    if (progress.kind === 'volume' && CREATING_OPS.has(followed.op) && progress.id !== followed.origin?.id) followed.making.add(progress.id);
    if (followed.origin && followed.origin !== target) followed.origin.emit('progress', progress);
    followed.onProgress?.(progress);
  }
}
