import { realpath, stat } from 'node:fs/promises';
import { relative } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { Volume } from '@kindling/sdk';
import { CsiError } from './errors.js';
import { must, run } from './exec.js';
import { mountTable, type MountEntry } from './mounts.js';

/** A dev_t as the mount table writes it (major:minor). */
const majorMinor = (n: number): string => `${Math.floor(n / 256) & 0xfff}:${(n & 0xff) | ((n >> 12) & 0xfff00)}`;

/**
 * Every mount of `device` on this node: its filesystem (a stage and the binds of a publish) and binds
 * of the device node itself (block mode, which the table shows as a path below /dev). What the node
 * unmounts is only ever one of these, never whatever else a path happens to hold.
 */
export async function mountsOf(device: string): Promise<MountEntry[]> {
  const node = await realpath(device);
  const { rdev, dev } = await stat(node);
  const filesystem = majorMinor(rdev);
  const holder = majorMinor(dev);
  const root = `/${relative('/dev', node)}`;
  return (await mountTable()).filter((m) => m.device === filesystem || (m.device === holder && m.root === root));
}

/** Loop devices backed by `file` (`losetup -j`), so a restarted plugin finds what it set up. */
export async function loopsOf(file: string): Promise<string[]> {
  const out = await must('losetup', ['--associated', file]);
  return out
    .split('\n')
    .map((line) => line.split(':')[0] ?? '')
    .filter((d) => d.startsWith('/dev/'));
}

/** The device attachDevice made for the volume, without attaching: null when it has none here. */
export async function attachedDevice(volume: Volume): Promise<string | null> {
  const path = volume.connections.find((c) => c.attached && c.path)?.path;
  if (!path) return null;
  if ((await stat(path)).isBlockDevice()) return path;
  const [loop] = await loopsOf(path);
  return loop ?? null;
}

/**
 * The block device of a volume on this host: attaches through the local agent (or reuses the
 * attachment the agent's index already holds) and, for a file volume, backs it with a loop device.
 * A qcow2 file is refused: mounting one needs qemu-nbd, which this driver does not run.
 */
export async function attachDevice(volume: Volume): Promise<string> {
  const existing = volume.connections.find((c) => c.attached && c.path);
  const connection = existing ?? (await volume.attach());
  const path = connection.path;
  if (!path) throw new CsiError(status.INTERNAL, `the agent attached volume ${volume.id} without a local path`);
  const info = await stat(path);
  if (info.isBlockDevice()) return path;
  const format = connection.connectionInfo.data['format'];
  if (format !== 'raw') {
    throw new CsiError(status.FAILED_PRECONDITION, `volume ${volume.id} is a ${String(format)} file; only raw files can be staged (a snapshot of an NFS volume turns its active file into a qcow2 overlay)`);
  }
  const [loop] = await loopsOf(path);
  return loop ?? (await must('losetup', ['--find', '--show', path])).trim();
}

/** Undoes attachDevice: the loop devices over the file, then the agent's attachment. */
export async function detachDevice(volume: Volume): Promise<void> {
  const connection = volume.connections.find((c) => c.attached);
  if (!connection) return;
  if (connection.path && (await stat(connection.path)).isFile()) {
    for (const loop of await loopsOf(connection.path)) await must('losetup', ['--detach', loop]);
  }
  await volume.detach();
}

/** The filesystem on a device, null when blkid finds none (exit 2: a blank device). */
export async function filesystemOn(device: string): Promise<string | null> {
  const r = await run('blkid', ['--probe', '--match-tag', 'TYPE', '--output', 'value', device]);
  if (r.code === 2) return null;
  if (r.code !== 0) throw new CsiError(status.INTERNAL, `blkid ${device} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.trim() || null;
}
