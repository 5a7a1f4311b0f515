import { stat } from 'node:fs/promises';
import { launch } from './exec/launch.js';

const CONTROL = '/dev/mapper/control';

/**
 * Why this host has no usable device-mapper (many containers and CI machines), or undefined when it has
 * one. Without it lvm2 edits metadata but activates nothing: no device node to zero, snapshot or attach.
 */
export async function deviceMapperMissing(): Promise<string | undefined> {
  if (!(await stat(CONTROL).catch(() => null))) return `${CONTROL} is absent`;
  const probe = await launch(['dmsetup', 'version'], { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } }).exited;
  // Without dmsetup installed, the control node is all there is to go on.
  if (probe.startError !== undefined) return undefined;
  if (probe.exitCode === 0) return undefined;
  // Its first complaint names the cause (`/dev/mapper/control: open failed: No such device`); the last is `Command failed.`
  const said = probe.stderr.split('\n').map((l) => l.trim()).find((l) => l && !/^Command failed/.test(l));
  return `dmsetup version failed${said ? `: ${said}` : ''}`;
}
