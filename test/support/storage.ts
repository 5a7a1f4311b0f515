import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { VolumeListing, VolumeRecord } from '@kindling/protocol';
import type { RawClient } from './raw-client.js';

// Crash and concurrency scenarios drive the agent over the bare protocol (an operation is sent and
// never awaited when the agent is killed under it) and read the share's files directly.

const exec = promisify(execFile);

/** The op's result; throws the agent's error (code and message) when it refused or failed. */
export async function call<T>(client: RawClient, op: string, args: unknown): Promise<T> {
  const reply = await client.call(op, args);
  if (!reply.ok) throw Object.assign(new Error(`${op}: ${reply.error.code} ${reply.error.message}`), { code: reply.error.code });
  return reply.result as T;
}

export const listAll = (client: RawClient): Promise<VolumeListing> => call<VolumeListing>(client, 'volume.list', {});

/** The file a volume's data is read from now: the `.info` record's active file, else its base file. */
export async function activeFile(share: string, volume: VolumeRecord): Promise<{ path: string; format: string }> {
  const base = `volume-${volume.id}`;
  const text = await readFile(join(share, `${base}.info`), 'utf8').catch(() => null);
  const active = text ? (JSON.parse(text) as { active: string }).active : base;
  return { path: join(share, active), format: active === base ? String(volume.location.format) : 'qcow2' };
}

/** Writes byte `pattern` over the first MiB of a volume that is not attached (qemu-io on its active file). */
export async function writePattern(share: string, volume: VolumeRecord, pattern: number): Promise<void> {
  const { path, format } = await activeFile(share, volume);
  await exec('qemu-io', ['-f', format, '-c', `write -P 0x${pattern.toString(16)} 0 1M`, path]);
}

/** True when the first MiB of the volume reads as byte `pattern` through its whole chain. */
export async function readsPattern(share: string, volume: VolumeRecord, pattern: number): Promise<boolean> {
  const { path, format } = await activeFile(share, volume);
  try {
    const { stdout } = await exec('qemu-io', ['-r', '-U', '-f', format, '-c', `read -P 0x${pattern.toString(16)} 0 1M`, path]);
    return !stdout.includes('Pattern verification failed');
  } catch (err) {
    if (String((err as { stdout?: string }).stdout ?? '').includes('Pattern verification failed')) return false;
    throw err;
  }
}
