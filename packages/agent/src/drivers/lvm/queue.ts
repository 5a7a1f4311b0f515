/**
 * One write queue per volume group, module-wide so that two backends on one VG share it. LVM takes
 * its own VG lock anyway; queuing here keeps waiting fair (FIFO) and a failure belongs to its own call.
 */
const tails = new Map<string, Promise<unknown>>();

export function withVgLock<T>(vg: string, fn: () => Promise<T>): Promise<T> {
  const prev = tails.get(vg) ?? Promise.resolve();
  const result = prev.then(fn);
  // The tail never rejects, so one failed write does not fail the calls queued behind it.
  const tail = result.then(
    () => undefined,
    () => undefined,
  );
  tails.set(vg, tail);
  void tail.then(() => {
    if (tails.get(vg) === tail) tails.delete(vg);
  });
  return result;
}
