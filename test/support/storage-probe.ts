// A storage probe: what the cinderlib suite needs to look at a backend's storage where it really is (a
// local folder on this host, or the guest of the real-kernel lane), and the data and storage checks written
// once over it. The host's probe is in host-probe.ts, the guest's in test-kernel/support/data.ts.
import type { Agent, Connection, Volume } from '@kindling/sdk';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export type ImageFormat = 'raw' | 'qcow2';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an argv where the storage is. Does not throw on a non-zero exit: check `code`. */
export type Run = (argv: string[]) => Promise<RunResult>;

/** An LVM backend: volumes are LVs of a VG (thin: in its pool). */
export interface LvmLayout {
  driver: 'lvm';
  vg: string;
  thin: boolean;
  /** The thin pool (thin only). */
  pool?: string;
}

/** An NFS backend: volumes are image files in one folder. */
export interface FileLayout {
  driver: 'nfs';
  /** qcow2 images and sparse raw files are both thin. */
  thin: true;
  /** The folder holding the volume files, as the probe's `run` sees it (the agent's mount of the share). */
  folder: string;
  /** The format of new volume files. */
  format: ImageFormat;
  /** The share is really NFS-mounted there (not a local folder used as a share). */
  nfsMounted: boolean;
}

export type StorageLayout = LvmLayout | FileLayout;

export interface StorageProbe {
  /** The backend's name in the agent's config. */
  backend: string;
  /** Where it runs, for the suite's titles. */
  where: string;
  layout: StorageLayout;
  run: Run;
  /** A new SDK connection to the agent serving the backend. */
  connect(): Promise<Agent>;
  /** Starts what the probe needs before the first connect (the host's own agent process), and stops it. */
  setUp?(): Promise<void>;
  tearDown?(): Promise<void>;
}

/** Runs argv, returns stdout; throws with the output on a non-zero exit. */
export async function mustRun(run: Run, argv: string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

const isDevice = (path: string): boolean => path.startsWith('/dev/');

function attachedPath(conn: Connection): string {
  if (!conn.path) throw new Error(`connection ${conn.id} has no local path`);
  return conn.path;
}

/** The image format at the attached path: raw for a block device, the connection's format for a file. */
export function formatOf(conn: Connection): ImageFormat {
  if (isDevice(attachedPath(conn))) return 'raw';
  const format = conn.connectionInfo.data.format;
  if (format !== 'raw' && format !== 'qcow2') throw new Error(`connection ${conn.id} has no usable format: ${String(format)}`);
  return format;
}

function qemuIo(conn: Connection, command: string): string[] {
  const path = attachedPath(conn);
  // -n: O_DIRECT (no page cache) on devices, so what LVM snapshots and dd see is on the device
  return ['qemu-io', '-f', formatOf(conn), ...(isDevice(path) ? ['-n'] : []), '-c', command, path];
}

const hex = (pattern: number): string => `0x${pattern.toString(16)}`;

/** Writes the byte `pattern` over [offset, offset+length) of the attached device or file. */
export async function writePattern(run: Run, conn: Connection, pattern: number, offset = '0', length = '4M'): Promise<void> {
  const r = await run(qemuIo(conn, `write -P ${hex(pattern)} ${offset} ${length}`));
  // qemu-io reports some failures on its output with a zero exit
  if (r.code !== 0 || /error|failed/i.test(r.stdout + r.stderr)) {
    throw new Error(`qemu-io write on ${conn.path} exited ${r.code}: ${r.stdout}${r.stderr}`);
  }
}

/** True when every byte of [offset, offset+length) of the attached device or file reads as `pattern`. */
export async function readsPattern(run: Run, conn: Connection, pattern: number, offset = '0', length = '4M'): Promise<boolean> {
  const r = await run(qemuIo(conn, `read -P ${hex(pattern)} ${offset} ${length}`));
  if (/Pattern verification failed/.test(r.stdout + r.stderr)) return false;
  if (r.code !== 0) throw new Error(`qemu-io read on ${conn.path} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return true;
}

export interface ImageInfo {
  format: string;
  'virtual-size': number;
}

/** qemu-img's view of an image file (-U: the agent may hold it open). */
export async function imageInfo(run: Run, path: string, format?: ImageFormat): Promise<ImageInfo> {
  const out = await mustRun(run, ['qemu-img', 'info', '--output=json', '-U', ...(format ? ['-f', format] : []), path]);
  return JSON.parse(out) as ImageInfo;
}

/** The size a reader of the attached path sees, in bytes (cinderlib's _get_vol_size). */
export async function readerSize(run: Run, conn: Connection): Promise<number> {
  const path = attachedPath(conn);
  if (isDevice(path)) return Number((await mustRun(run, ['blockdev', '--getsize64', path])).trim());
  return (await imageInfo(run, path, formatOf(conn)))['virtual-size'];
}

/**
 * Writes `mib` MiB of random bytes at `offsetMib` of a device with plain dd (O_DIRECT); returns the file
 * beside the storage that keeps a copy of them, for `holdsSample`.
 */
export async function ddWriteSample(run: Run, path: string, offsetMib: number, mib: number): Promise<string> {
  const sample = (await mustRun(run, ['mktemp'])).trim();
  await mustRun(run, ['dd', 'if=/dev/urandom', `of=${sample}`, 'bs=1M', `count=${mib}`, 'status=none']);
  await mustRun(run, ['dd', `if=${sample}`, `of=${path}`, 'bs=1M', `seek=${offsetMib}`, 'oflag=direct', 'conv=notrunc,fsync', 'status=none']);
  return sample;
}

/** True when `path` at `offsetMib` holds the bytes of `sample` (made by ddWriteSample). */
export async function holdsSample(run: Run, path: string, offsetMib: number, sample: string): Promise<boolean> {
  const bytes = Number((await mustRun(run, ['stat', '-c', '%s', sample])).trim());
  return (await run(['cmp', '-s', '-n', String(bytes), '-i', `0:${offsetMib * MiB}`, sample, path])).code === 0;
}

export interface LvRow {
  lv_name: string;
  lv_size: string;
  lv_attr: string;
  origin: string;
  pool_lv: string;
  lv_tags: string;
  /** A thin pool's (or snapshot's) used share of its data, in percent; empty for others. */
  data_percent: string;
}

/** The VG's LVs as lvm2 reports them. */
export async function lvs(run: Run, vg: string): Promise<LvRow[]> {
  const out = await mustRun(run, [
    'lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix',
    '-o', 'lv_name,lv_size,lv_attr,origin,pool_lv,lv_tags,data_percent', vg,
  ]);
  return (JSON.parse(out) as { report: { lv: LvRow[] }[] }).report[0]!.lv;
}

export async function lv(run: Run, vg: string, name: string): Promise<LvRow | undefined> {
  return (await lvs(run, vg)).find((row) => row.lv_name === name);
}

/** lv_attr's fifth character is the activation state: `a` when the device is up. */
export const isActive = (row: LvRow): boolean => row.lv_attr[4] === 'a';

export async function vgFigures(run: Run, vg: string): Promise<{ size: number; free: number }> {
  const out = await mustRun(run, ['vgs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'vg_size,vg_free', vg]);
  const row = (JSON.parse(out) as { report: { vg: { vg_size: string; vg_free: string }[] }[] }).report[0]!.vg[0]!;
  return { size: Number(row.vg_size), free: Number(row.vg_free) };
}

/** The file system holding `path`: total and available bytes, and its type name (stat -f). */
export async function fsFigures(run: Run, path: string): Promise<{ total: number; avail: number; type: string }> {
  const [blocks, bsize, avail, type] = (await mustRun(run, ['stat', '-f', '-c', '%b %S %a %T', path])).trim().split(' ');
  return { total: Number(blocks) * Number(bsize), avail: Number(avail) * Number(bsize), type: type ?? '' };
}

/** Names in a folder. */
export async function ls(run: Run, dir: string): Promise<string[]> {
  return (await mustRun(run, ['ls', '-1A', dir])).split('\n').filter(Boolean);
}

export async function testPath(run: Run, flag: '-b' | '-f' | '-e' | '-d', path: string): Promise<boolean> {
  return (await run(['test', flag, path])).code === 0;
}

/** The files of one volume in a file backend's folder: the base file, overlays and the .info record. */
export async function volumeFiles(run: Run, layout: FileLayout, vol: { id: string }): Promise<string[]> {
  return (await ls(run, layout.folder)).filter((n) => n.startsWith(`volume-${vol.id}`)).sort();
}

/** Attaches, runs `fn` on the connection, detaches (also when `fn` throws). */
export async function whileAttached<T>(vol: Volume, fn: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await vol.attach();
  try {
    return await fn(conn);
  } finally {
    await vol.detach();
  }
}
