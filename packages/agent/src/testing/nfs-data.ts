import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

// A volume's data on an NFS share, read and written with qemu-io straight on its files (the volume must
// not be attached, nor any operation run on it): a byte pattern over the first MiB, zeros after it. A
// check covers every byte of the volume: what qemu-img map reports as holes reads as zeros unread.

const exec = promisify(execFile);

/** What the helpers need of a volume record. */
export interface NfsVolume {
  id: string;
  location: Record<string, unknown>;
}

type Info = Record<string, string>;

async function readInfo(share: string, volumeId: string): Promise<Info | null> {
  const text = await readFile(join(share, `volume-${volumeId}.info`), 'utf8').catch(() => null);
  return text === null ? null : (JSON.parse(text) as Info);
}

/** The file a volume's data is read from now: the `.info` record's active file, else its base file. */
export async function activeFile(share: string, volume: NfsVolume): Promise<{ path: string; format: string }> {
  const base = `volume-${volume.id}`;
  const active = (await readInfo(share, volume.id))?.active ?? base;
  return { path: join(share, active), format: active === base ? String(volume.location.format) : 'qcow2' };
}

const hex = (pattern: number): string => `0x${pattern.toString(16)}`;

/** Writes byte `pattern` over the first MiB of the volume. */
export async function writePattern(share: string, volume: NfsVolume, pattern: number): Promise<void> {
  const { path, format } = await activeFile(share, volume);
  await exec('qemu-io', ['-f', format, '-c', `write -P ${hex(pattern)} 0 1M`, path]);
}

const MiB = 1024 * 1024;
// qemu-io reads into one buffer per command: long extents are read in pieces.
const PIECE = 64 * MiB;

interface Extent {
  start: number;
  length: number;
  zero: boolean;
}

/** True when the whole image reads as byte `pattern` over its first MiB and as zeros after it. */
export async function imageReadsPattern(path: string, format: string, pattern: number): Promise<boolean> {
  const { stdout: map } = await exec('qemu-img', ['map', '--output=json', '-U', '-f', format, path]);
  const commands: string[] = [];
  for (const e of JSON.parse(map) as Extent[]) {
    const end = e.start + e.length;
    for (const [from, to, expected] of [[e.start, Math.min(end, MiB), pattern], [Math.max(e.start, MiB), end, 0]] as const) {
      if (to <= from) continue;
      if (e.zero) {
        if (expected !== 0) return false;
        continue;
      }
      for (let at = from; at < to; at += PIECE) commands.push('-c', `read -P ${hex(expected)} ${at} ${Math.min(PIECE, to - at)}`);
    }
  }
  if (commands.length === 0) return true;
  try {
    const { stdout } = await exec('qemu-io', ['-r', '-U', '-f', format, ...commands, path], { maxBuffer: 64 * MiB });
    return !stdout.includes('Pattern verification failed');
  } catch (err) {
    if (String((err as { stdout?: string }).stdout ?? '').includes('Pattern verification failed')) return false;
    throw err;
  }
}

/** True when the volume reads as byte `pattern` over its first MiB and zeros after it, through its whole chain. */
export async function readsPattern(share: string, volume: NfsVolume, pattern: number): Promise<boolean> {
  const { path, format } = await activeFile(share, volume);
  return imageReadsPattern(path, format, pattern);
}

/** True when the snapshot's data (the backing file of the overlay `.info` names for it) reads as `pattern`. */
export async function snapshotReadsPattern(share: string, volumeId: string, snapshotId: string, pattern: number): Promise<boolean> {
  const overlay = (await readInfo(share, volumeId))?.[snapshotId];
  if (!overlay) return false;
  const { stdout } = await exec('qemu-img', ['info', '--output=json', '-U', '-f', 'qcow2', join(share, overlay)]);
  const header = JSON.parse(stdout) as { 'backing-filename'?: string; 'backing-filename-format'?: string };
  const [backing, format] = [header['backing-filename'], header['backing-filename-format']];
  // The agent always names the backing format (-F); without it the overlay is not one it made.
  if (!backing || !format) return false;
  return imageReadsPattern(join(share, backing), format, pattern);
}
