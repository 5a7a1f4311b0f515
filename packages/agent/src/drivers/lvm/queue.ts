import { KeyedLocks } from '../../locks.js';

/**
 * One write queue per volume group, module-wide so that two backends on one VG share it: the same
 * keyed lock the service takes per resource. LVM takes its own VG lock anyway; queuing here keeps
 * waiting fair (FIFO) and a failure belongs to its own call.
 */
const vgs = new KeyedLocks();

export const withVgLock = <T>(vg: string, fn: () => Promise<T>): Promise<T> => vgs.with([vg], fn);
