/**
 * Crash injection for the node's crash tests: a plugin started with `KINDLING_CSI_FAULT=<point>`
 * kills itself there, as a crash would. A no-op otherwise.
 */
export type FaultPoint =
  /** NodeStageVolume: the device is set up (a qcow2 file's daemon started, the loop over it), nothing mounted yet. */
  'stage:attached';

export function fault(point: FaultPoint): void {
  if (process.env['KINDLING_CSI_FAULT'] === point) process.kill(process.pid, 'SIGKILL');
}
