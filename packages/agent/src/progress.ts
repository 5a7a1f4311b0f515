import { AsyncLocalStorage } from 'node:async_hooks';
import type { Progress } from '@kindling/protocol';
import { currentRequest } from './request-context.js';

/**
 * How far a long copy has got, reported from the driver that runs it to every session, without
 * threading a callback through each layer: the rpc layer names the request, the service the resource
 * and where to publish, and the driver reports bytes done. Outside an operation nothing is reported.
 */

export interface Subject {
  kind: Progress['kind'];
  id: string;
  publish(progress: Progress): void;
}

const subject = new AsyncLocalStorage<Subject>();

/** Runs the storage work for one resource (service layer). */
export const forSubject = <T>(s: Subject, fn: () => T): T => subject.run(s, fn);

/** At most this often per copy, besides the first and the last report. */
const EVERY_MS = 500;

/**
 * A meter for one copy of `totalBytes` in the current operation (driver layer), or a no-op when none
 * is running. `op` overrides the request's op (a delete's zeroing reports `volume.clear`).
 */
export function progressMeter(totalBytes: number, op?: Progress['op']): (doneBytes: number) => void {
  const s = subject.getStore();
  const r = currentRequest();
  const name = op ?? r?.op;
  if (!s || !name) return () => undefined;
  let last = 0;
  let reported = -1;
  return (doneBytes) => {
    const now = Date.now();
    const done = Math.min(doneBytes, totalBytes);
    if (done === reported || (done < totalBytes && reported >= 0 && now - last < EVERY_MS)) return;
    last = now;
    reported = done;
    s.publish({ kind: s.kind, id: s.id, op: name, doneBytes: done, totalBytes, ...(r?.requestId ? { requestId: r.requestId } : {}) });
  };
}

/** `qemu-img -p` redraws `    (12.50/100%)`: the fraction done of that line, else null. */
export function qemuImgFraction(line: string): number | null {
  const m = /\((\d+(?:\.\d+)?)\/100%\)/.exec(line);
  return m ? Number(m[1]) / 100 : null;
}
