import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { must } from './exec.js';
import { mountTable, type MountEntry } from './mounts.js';

// What the node knows of a volume without its agent: the mount table and sysfs. A volume's device is
// a loop over its file `volume-<id>` (NFS) or its logical volume `volume-<id>` (LVM, device-mapper),
// so unpublish and unstage find their mounts while the agent is away.

/** A dev_t as the mount table and sysfs write it (major:minor). */
export const majorMinor = (n: number): string => `${Math.floor(n / 256) & 0xfff}:${(n & 0xff) | ((n >> 12) & 0xfff00)}`;

const fileName = (volumeId: string): string => `volume-${volumeId}`;
/** The volume's file, or one of its chain (`volume-<id>.<snapshot id>`), by the NFS driver's names. */
const isVolumeFile = (file: string, volumeId: string): boolean => basename(file) === fileName(volumeId) || basename(file).startsWith(`${fileName(volumeId)}.`);
const readOrNull = (path: string): Promise<string | null> => readFile(path, 'utf8').then((s) => s.trim(), () => null);

/** The file behind a loop device, as sysfs names it, and whether it was deleted (sysfs adds a suffix then). */
export async function loopBacking(sysDir: string): Promise<{ file: string; deleted: boolean } | null> {
  const named = await readOrNull(join(sysDir, 'loop', 'backing_file'));
  return named === null ? null : { file: named.replace(/ \(deleted\)$/, ''), deleted: named.endsWith(' (deleted)') };
}
const loopFile = async (sysDir: string): Promise<string | null> => (await loopBacking(sysDir))?.file ?? null;

/** Whether block device `dev` (major:minor) is this volume's: a loop over its file or its LV. */
async function isVolumeDevice(dev: string, volumeId: string): Promise<boolean> {
  const sys = `/sys/dev/block/${dev}`;
  const file = await loopFile(sys);
  if (file !== null) return isVolumeFile(file, volumeId);
  // device-mapper writes an LV as vg-lv with each '-' inside a name doubled.
  const dm = await readOrNull(join(sys, 'dm', 'name'));
  return dm !== null && dm.endsWith(`-${fileName(volumeId).replace(/-/g, '--')}`);
}

/**
 * Every mount on this node of the volume's device: its filesystem (a stage and the binds of a
 * publish) and binds of the device node itself (block mode, shown as a path in the /dev filesystem).
 */
export async function mountsOfVolume(volumeId: string): Promise<MountEntry[]> {
  const devFs = majorMinor((await stat('/dev')).dev);
  const table = await mountTable();
  const mine: MountEntry[] = [];
  for (const m of table) {
    const node = m.device === devFs && m.root !== '/' ? await stat(join('/dev', m.root)).catch(() => null) : null;
    const dev = node ? (node.isBlockDevice() ? majorMinor(node.rdev) : null) : m.device;
    if (dev && (await isVolumeDevice(dev, volumeId))) mine.push(m);
  }
  return mine;
}

/** The loop devices over the volume's file, so a restarted plugin finds what it set up. */
export async function loopsOfVolume(volumeId: string): Promise<string[]> {
  const loops: string[] = [];
  for (const name of (await readdir('/sys/block')).filter((n) => n.startsWith('loop'))) {
    const file = await loopFile(join('/sys/block', name));
    if (file !== null && isVolumeFile(file, volumeId)) loops.push(`/dev/${name}`);
  }
  return loops;
}

/** Detaches the loop devices over the volume's file: the local half of a detach, which needs no agent. */
export async function detachLoopsOf(volumeId: string): Promise<void> {
  for (const loop of await loopsOfVolume(volumeId)) await must('losetup', ['--detach', loop]);
}
