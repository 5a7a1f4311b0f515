import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

/** Whether this process holds a Linux capability (its bit in CapEff; 24 is CAP_SYS_RESOURCE). */
export function hasCapability(bit: number): boolean {
  const hex = readFileSync('/proc/self/status', 'utf8').match(/^CapEff:\s*([0-9a-f]+)$/m)?.[1] ?? '0';
  return (BigInt(`0x${hex}`) >> BigInt(bit)) % 2n === 1n;
}

/** Why the node service cannot run for real here, else null. */
export function nodeUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync('/dev/loop-control')) return 'no loop devices';
  const tool = (name: string) => ['/usr/sbin', '/sbin', '/usr/bin'].some((d) => existsSync(`${d}/${name}`));
  if (!['mkfs.ext4', 'mkfs.xfs', 'losetup', 'blkid', 'wipefs', 'sfdisk'].every(tool)) return 'e2fsprogs, xfsprogs, util-linux or fdisk missing (scripts/install-deps.sh)';
  // qcow2 volumes: qemu-storage-daemon's FUSE export.
  if (!tool('qemu-storage-daemon')) return 'qemu-storage-daemon missing (qemu-system-common, scripts/install-deps.sh)';
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse';
  return null;
}

/** Live qemu-storage-daemon processes whose command line holds `marker` (a volume id, a folder). */
export function daemonsWith(marker: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,stat=,args='], { encoding: 'utf8' });
  return out.split('\n').flatMap((line) => {
    const [pid, stat, command] = line.trim().split(/\s+/);
    return command?.endsWith('qemu-storage-daemon') && !stat?.startsWith('Z') && line.includes(marker) ? [Number(pid)] : [];
  });
}

/**
 * What a failed test left: mounts under `dir` (deepest first), loop devices over files under
 * `files`, then the qemu-storage-daemons serving files under `dir`.
 */
export function cleanUpHost(dir: string, files: string[]): void {
  for (const target of execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).split('\n').reverse()) {
    if (target.startsWith(dir)) execFileSync('umount', ['-l', target]);
  }
  for (const line of execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { encoding: 'utf8' }).split('\n')) {
    const [loop, file] = line.trim().split(/\s+/);
    if (loop && file && files.some((f) => file.startsWith(f))) execFileSync('losetup', ['--detach', loop]);
  }
  for (const pid of daemonsWith(dir)) process.kill(pid, 'SIGKILL');
}

/** A loopback port free now, for an agent that must come back where its clients look for it after a restart. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A test agent's two file backends on local folder shares under its folder `d`: `nfs` (raw files) and `nfs-qcow2`. */
export const fileBackends = (d: string): object[] => [
  { name: 'nfs', driver: 'nfs', shares: [join(d, 'share')], format: 'raw' },
  { name: 'nfs-qcow2', driver: 'nfs', shares: [join(d, 'share-qcow2')], format: 'qcow2' },
];
