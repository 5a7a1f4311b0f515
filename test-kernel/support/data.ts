// Data and storage checks inside the guest for the kernel-lane scenarios. Everything here runs through the
// test-only guest-exec helper (scripts/kernel-lane/guest-exec.mjs), never through an agent op.
import { createHash } from 'node:crypto';
import type { Connection } from '@kindling/sdk';
import { guestExec, guestSh } from './kernel.js';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

/** What each configured backend is made of in the guest (scripts/kernel-lane/run.sh writes the same). */
export interface BackendLayout {
  name: string;
  driver: 'lvm' | 'nfs';
  /** LVM: the volume group. */
  vg?: string;
  /** LVM: the thin pool. */
  pool?: string;
  thin: boolean;
  /** NFS: the share and where the agent mounts it (os-brick's `<base>/<md5 of the share>`). */
  share?: string;
  mountPoint?: string;
}

const NFS_SHARE = '127.0.0.1:/export';

export const LAYOUTS: Record<string, BackendLayout> = {
  'lvm-thick': { name: 'lvm-thick', driver: 'lvm', vg: 'kindling-thick', thin: false },
  'lvm-thin': { name: 'lvm-thin', driver: 'lvm', vg: 'kindling-thin', pool: 'kindling-thin-pool', thin: true },
  nfs: {
    name: 'nfs',
    driver: 'nfs',
    thin: true,
    share: NFS_SHARE,
    mountPoint: `/var/lib/kindling/mnt/${createHash('md5').update(NFS_SHARE).digest('hex')}`,
  },
};

export function layoutOf(name: string): BackendLayout {
  const layout = LAYOUTS[name];
  if (!layout) throw new Error(`no layout known for backend ${name}`);
  return layout;
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The image format at the attached path: raw for a block device, the connection's format for a file. */
export function formatOf(conn: Connection): 'raw' | 'qcow2' {
  if (conn.path?.startsWith('/dev/')) return 'raw';
  const format = conn.connectionInfo.data.format;
  if (format !== 'raw' && format !== 'qcow2') throw new Error(`connection ${conn.id} has no usable format: ${String(format)}`);
  return format;
}

function qemuIoArgs(conn: Connection): string[] {
  if (!conn.path) throw new Error(`connection ${conn.id} has no local path`);
  // -n: O_DIRECT (no host page cache) on devices, so what LVM snapshots and dd see is on the device
  return ['qemu-io', '-f', formatOf(conn), ...(conn.path.startsWith('/dev/') ? ['-n'] : [])];
}

/** Writes the byte `pattern` over [offset, offset+length) of the attached device or file, in the guest. */
export async function writePattern(conn: Connection, pattern: number, offset = '0', length = '4M'): Promise<void> {
  const r = await guestExec([...qemuIoArgs(conn), '-c', `write -P 0x${pattern.toString(16)} ${offset} ${length}`, conn.path!]);
  if (r.code !== 0 || /error|failed/i.test(r.stdout + r.stderr)) {
    throw new Error(`qemu-io write on ${conn.path} exited ${r.code}: ${r.stdout}${r.stderr}`);
  }
}

/** True when every byte of [offset, offset+length) of the attached device or file reads as `pattern`. */
export async function readsPattern(conn: Connection, pattern: number, offset = '0', length = '4M'): Promise<boolean> {
  const r = await guestExec([...qemuIoArgs(conn), '-c', `read -P 0x${pattern.toString(16)} ${offset} ${length}`, conn.path!]);
  if (/Pattern verification failed/.test(r.stdout + r.stderr)) return false;
  if (r.code !== 0) throw new Error(`qemu-io read on ${conn.path} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return true;
}

/** The size a reader of the attached path sees, in bytes: the block device's, or the image's virtual size. */
export async function guestSize(conn: Connection): Promise<number> {
  if (!conn.path) throw new Error(`connection ${conn.id} has no local path`);
  if (conn.path.startsWith('/dev/')) return Number((await guestSh(`blockdev --getsize64 ${q(conn.path)}`)).trim());
  const out = await guestSh(`qemu-img info -U --output=json -f ${formatOf(conn)} ${q(conn.path)}`);
  return (JSON.parse(out) as { 'virtual-size': number })['virtual-size'];
}

export interface LvRow {
  lv_name: string;
  lv_size: string;
  lv_attr: string;
  origin: string;
  pool_lv: string;
  lv_tags: string;
}

/** The VG's LVs as the guest's lvm2 reports them. */
export async function guestLvs(vg: string): Promise<LvRow[]> {
  const out = await guestSh(
    `lvs --reportformat json --units b --nosuffix -o lv_name,lv_size,lv_attr,origin,pool_lv,lv_tags ${q(vg)}`,
  );
  return (JSON.parse(out) as { report: { lv: LvRow[] }[] }).report[0]!.lv;
}

export async function guestLv(vg: string, lv: string): Promise<LvRow | undefined> {
  return (await guestLvs(vg)).find((row) => row.lv_name === lv);
}

/** lv_attr's fifth character is the activation state: `a` when the device is up. */
export const isActive = (row: LvRow): boolean => row.lv_attr[4] === 'a';

export async function guestVg(vg: string): Promise<{ vg_size: number; vg_free: number }> {
  const out = await guestSh(`vgs --reportformat json --units b --nosuffix -o vg_size,vg_free ${q(vg)}`);
  const row = (JSON.parse(out) as { report: { vg: { vg_size: string; vg_free: string }[] }[] }).report[0]!.vg[0]!;
  return { vg_size: Number(row.vg_size), vg_free: Number(row.vg_free) };
}

/** Names in a guest folder. */
export async function guestLs(dir: string): Promise<string[]> {
  return (await guestSh(`ls -1A ${q(dir)}`)).split('\n').filter(Boolean);
}

export async function guestTest(flag: '-b' | '-f' | '-e' | '-d', path: string): Promise<boolean> {
  return (await guestExec(['test', flag, path])).code === 0;
}

/** The files of one volume on the NFS share: the base file, overlays and the .info record. */
export async function volumeFiles(layout: BackendLayout, vol: { id: string }): Promise<string[]> {
  return (await guestLs(layout.mountPoint!)).filter((n) => n.startsWith(`volume-${vol.id}`)).sort();
}

// The host suites' helper: attach, run, detach (also when it throws).
export { whileAttached } from '../../test/support/cinderlib.js';
