import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { loopBacking, loopsOfVolume } from './local.js';
import { daemonOf, exportFileOf } from './qsd.js';

/** CSI's VolumeCondition: abnormal with a message saying what the node found wrong. */
export interface VolumeCondition {
  abnormal: boolean;
  message: string;
}

const abnormal = (message: string): VolumeCondition => ({ abnormal: true, message });

/**
 * What the node sees of a staged volume's storage, from sysfs and the process list: the file behind
 * each loop device still there, and for a qcow2 volume its daemon running and its image not deleted.
 * A mounted filesystem over storage that went keeps answering from its cache for a while; this says so.
 */
export async function conditionOf(volumeId: string, stateDir: string): Promise<VolumeCondition> {
  const served = exportFileOf(stateDir, volumeId);
  for (const loop of await loopsOfVolume(volumeId)) {
    const backing = await loopBacking(`/sys/block/${basename(loop)}`);
    if (!backing) continue;
    if (backing.deleted) return abnormal(`the file behind ${loop} was deleted: ${backing.file}`);
    if (backing.file !== served) continue;
    const daemon = await daemonOf(stateDir, volumeId);
    if (!daemon) return abnormal(`qemu-storage-daemon serving volume ${volumeId} at ${served} is not running: reads and writes fail; unstage and stage the volume again`);
    if (!(await stat(daemon.image).then(() => true, () => false))) return abnormal(`the image ${daemon.image} of volume ${volumeId} is gone: qemu-storage-daemon writes to a deleted file`);
  }
  return { abnormal: false, message: '' };
}
