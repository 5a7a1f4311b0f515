import { existsSync } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type RunResult } from '../exec/run.js';

/** A throw-away VG on a loop device, with its own lvm.conf (the test lane's LVM_SYSTEM_DIR). */
export interface LoopVg {
  vg: string;
  device: string;
  lvmConfFile: string;
  /** Runs an lvm2 command against this VG's lvm.conf, as the driver does. */
  lvm(argv: string[]): Promise<RunResult>;
  destroy(): Promise<void>;
}

/** Why a loop VG cannot be made here (not root, no loop devices), else null. */
export function loopVgUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root';
  if (!existsSync('/dev/loop-control')) return 'no loop devices (/dev/loop-control missing)';
  return null;
}

/**
 * `activation: false` (the default) writes `global { activation = 0 }`: lvm2 then edits metadata only,
 * which is all a kernel without device-mapper allows. The filter admits only this loop device, so
 * the test sees no other VG and no other test sees this one.
 */
function lvmConf(device: string, activation: boolean): string {
  return [
    `global { activation = ${activation ? 1 : 0} }`,
    'devices {',
    '  obtain_device_list_from_udev = 0',
    '  use_devicesfile = 0',
    `  filter = [ "a|^${device}$|", "r|.*|" ]`,
    '}',
    'activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }',
    'backup { backup = 0 archive = 0 }',
    '',
  ].join('\n');
}

/** `metadataSizeMiB`: the PV's metadata area (lvm2's default, 1 MiB, holds about 1,400 LVs). */
export async function createLoopVg(options: { sizeMiB?: number; activation?: boolean; metadataSizeMiB?: number } = {}): Promise<LoopVg> {
  const dir = await mkdtemp(join(tmpdir(), 'kindling-lvm-'));
  const image = join(dir, 'disk.img');
  const lvmConfFile = join(dir, 'lvm.conf');
  const vg = `kindling-test-${randomUUID()}`;
  const env = { LVM_SYSTEM_DIR: dir, LVM_SUPPRESS_FD_WARNINGS: '1' };
  const lvm = (argv: string[]): Promise<RunResult> => run(argv, { env });
  let device: string | null = null;
  let pvDone = false;
  let vgDone = false;

  const destroy = async (): Promise<void> => {
    // Each step runs even if an earlier one failed, so a broken test still frees its loop device.
    if (vgDone) await lvm(['vgremove', '-f', vg]).catch(() => undefined);
    if (pvDone && device) await lvm(['pvremove', '-ff', '-y', device]).catch(() => undefined);
    if (device) await run(['losetup', '-d', device]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await writeFile(image, '');
    await truncate(image, (options.sizeMiB ?? 4096) * 1024 * 1024);
    device = (await run(['losetup', '-f', '--show', image])).stdout.trim();
    await writeFile(lvmConfFile, lvmConf(device, options.activation ?? false));
    await lvm(['pvcreate', '-y', ...(options.metadataSizeMiB ? ['--metadatasize', `${options.metadataSizeMiB}m`] : []), device]);
    pvDone = true;
    await lvm(['vgcreate', vg, device]);
    vgDone = true;
  } catch (err) {
    await destroy();
    throw err;
  }
  return { vg, device, lvmConfFile, lvm, destroy };
}
