import { dirname } from 'node:path';
import type { RunOptions, RunResult, Runner } from '../../exec/run.js';
import { progressMeter } from '../../progress.js';
import { extentsOf, parseRange, rangeArg, type PeRange } from './extents.js';
import { LV_FIELDS, VG_FIELDS, parseFreeRanges } from './report.js';
import { LvmShell } from './shell.js';

/** cinder's brick: LV removal can race udev, so deactivation is retried. */
const REMOVE_CONFIG = 'activation { retry_deactivation = 1 }';
/** cinder's retry: a failed `lvremove -f` may leave suspended devices that block every later scan. */
const REMOVE_RETRY_CONFIG = `${REMOVE_CONFIG} devices { ignore_suspended_devices = 1 }`;

const MIB = 1024 * 1024;
/** The slowest copy allowed (MiB/s) before its child is killed. */
const COPY_MIN_MIBPS = 8;
/** How long `mib` may take at `minMiBps` (never under two minutes); 0 MiB/s: 0, no limit (the runner's and execa's "none"). */
export const slowestMs = (mib: number, minMiBps: number): number =>
  minMiBps > 0 ? Math.max(120_000, Math.ceil((mib * 1000) / minMiBps)) : 0;

export const devicePath = (vg: string, lv: string): string => `/dev/${vg}/${lv}`;

/** The device-mapper name of an LV (`-` doubled in each part), where its `-cow` and `-real` layers live. */
export const mapperPath = (vg: string, lv: string): string => `/dev/mapper/${vg.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;

/** True when lvm2's error says the LV is not there (delete is idempotent on that). */
export const isLvNotFound = (stderr: string): boolean =>
  /Failed to find logical volume|not found in volume group/.test(stderr);

/** True when lvextend found the LV already at the asked size (a retried extend). */
export const isSameSize = (stderr: string): boolean => /matches existing size/.test(stderr);

/** Every lvm2 command the driver runs, one small function each (TopoLVM lvmd style). */
export class LvmCommands {
  private readonly env: Record<string, string>;
  /** lvm2 commands go through it when on: one long-lived lvm process instead of one per command. */
  readonly shell: LvmShell | null;

  constructor(
    private readonly run: Runner,
    readonly vg: string,
    lvmConfFile: string | undefined,
    shell = false,
  ) {
    this.env = { LVM_SUPPRESS_FD_WARNINGS: '1' };
    if (lvmConfFile) this.env.LVM_SYSTEM_DIR = dirname(lvmConfFile);
    this.shell = shell ? new LvmShell(this.env, (argv, options) => this.process(argv, options)) : null;
  }

  private lvm(argv: string[], options: RunOptions = {}): Promise<RunResult> {
    return this.shell ? this.shell.run(argv, options) : this.process(argv, options);
  }

  /** An lvm2 command as a process of its own. */
  private process(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.run(argv, { ...options, env: { ...this.env, ...options.env } });
  }

  private path(lv: string): string {
    return `${this.vg}/${lv}`;
  }

  /** The whole VG in one JSON report: the VG's figures and every LV's. */
  fullReport(): Promise<RunResult> {
    return this.lvm([
      'lvm', 'fullreport', '--reportformat', 'json', '--units', 'b', '--nosuffix',
      '--configreport', 'vg', '-o', VG_FIELDS.join(','),
      '--configreport', 'lv', '-o', LV_FIELDS.join(','),
      // fullreport always prints these sections; one field each keeps the output small.
      '--configreport', 'pv', '-o', 'pv_name',
      '--configreport', 'pvseg', '-o', 'pvseg_start',
      '--configreport', 'seg', '-o', 'segtype',
      this.vg,
    ]);
  }

  /** One LV's fields, for the rare lookup the cached report cannot answer; a missing LV is an answer. */
  lvs(lv: string): Promise<RunResult> {
    return this.lvm(['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', LV_FIELDS.join(','), this.path(lv)], { expected: isLvNotFound });
  }

  /** `on`: the extents it may take (none: anywhere). */
  createLinear(lv: string, sizeGb: number, tags: string[], on: PeRange[] = []): Promise<RunResult> {
    return this.lvm(['lvcreate', '-n', lv, '-L', `${sizeGb}g`, ...tagArgs(tags), this.vg, ...on.map(rangeArg)]);
  }

  /** The free extents of this VG's PVs. */
  async freeRanges(): Promise<PeRange[]> {
    const fields = 'pv_name,vg_name,pvseg_start,pvseg_size,lv_name';
    return parseFreeRanges((await this.lvm(['pvs', '--segments', '--reportformat', 'json', '-o', fields])).stdout, this.vg);
  }

  /** cinder's create_thin_pool: `lvcreate -T -L <size> VG/POOL`. */
  createThinPool(pool: string, sizeBytes: number): Promise<RunResult> {
    return this.lvm(['lvcreate', '-T', '-L', `${sizeBytes}b`, this.path(pool)]);
  }

  createThin(lv: string, sizeGb: number, pool: string, tags: string[]): Promise<RunResult> {
    return this.lvm(['lvcreate', '-T', '-V', `${sizeGb}g`, '-n', lv, ...tagArgs(tags), this.path(pool)]);
  }

  /**
   * A snapshot with the activation-skip flag set, as cinder's create_lv_snapshot (`-k y`); thick
   * snapshots need a COW size (`sizeGb`), thin ones take none.
   */
  createSnapshot(lv: string, origin: string, tags: string[], sizeGb: number | null, on: PeRange[] = [], pinned = false): Promise<RunResult> {
    // Pinned: exactly the extents `on`, all of them.
    const size = pinned ? ['-l', String(extentsOf(on))] : sizeGb === null ? [] : ['-L', `${sizeGb}g`];
    return this.lvm(['lvcreate', '-s', '-k', 'y', ...size, '-n', lv, ...tagArgs(tags), this.path(origin), ...on.map(rangeArg)]);
  }

  /** Where an LV's extents lie: one PV range per segment (a thick snapshot's: its COW store's). */
  async peRanges(lv: string): Promise<PeRange[]> {
    // A process of its own: the shell prints every report as JSON, and this one is read as text (reverts only).
    const { stdout } = await this.process(['lvs', '--noheadings', '-o', 'seg_pe_ranges', this.path(lv)]);
    return stdout.split(/\s+/).filter(Boolean).map(parseRange);
  }

  addTags(lv: string, tags: string[]): Promise<RunResult> {
    return this.lvm(['lvchange', ...tagArgs(tags), this.path(lv)]);
  }

  delTags(lv: string, tags: string[]): Promise<RunResult> {
    return this.lvm(['lvchange', ...tags.flatMap((t) => ['--deltag', t]), this.path(lv)]);
  }

  remove(lv: string, retry = false): Promise<RunResult> {
    return this.lvm(['lvremove', '--config', retry ? REMOVE_RETRY_CONFIG : REMOVE_CONFIG, '-f', this.path(lv)]);
  }

  extend(lv: string, sizeGb: number, on: PeRange[] = []): Promise<RunResult> {
    return this.lvm(['lvextend', '-L', `${sizeGb}g`, this.path(lv), ...on.map(rangeArg)]);
  }

  /**
   * `-K` activates LVs that carry the activation-skip flag (thin snapshots and what is made from them);
   * `permanent` also clears the flag so the LV comes up by itself after a reboot (cinder's activate_lv).
   * lvm2 2.03 refuses `-K` and `-k n` in one lvchange ("Command does not accept option:
   * --ignoreactivationskip"), so the flag is cleared by a command of its own first.
   */
  async activate(lv: string, permanent = false): Promise<RunResult & { command: string[] }> {
    if (permanent) await this.lvm(['lvchange', '-k', 'n', this.path(lv)]);
    const command = ['lvchange', '-a', 'y', '--yes', '-K', this.path(lv)];
    // A process of its own, never the shell: activating an origin with a merge pending forks lvm2's
    // poller from whatever activates it, and a poller forked from the shell shares its report channel.
    return { ...(await this.process(command)), command };
  }

  deactivate(lv: string): Promise<RunResult> {
    return this.lvm(['lvchange', '-a', 'n', this.path(lv)]);
  }

  /**
   * Starts merging a thick snapshot back into its origin and returns (lvm2 polls it to the end in the
   * background, then removes the snapshot LV).
   */
  merge(snapshot: string): Promise<RunResult> {
    // A process of its own, never the shell: lvm2 forks the merge's poller from whatever runs it.
    return this.process(['lvconvert', '--background', '--merge', this.path(snapshot)]);
  }

  rename(from: string, to: string): Promise<RunResult> {
    return this.lvm(['lvrename', this.vg, from, to]);
  }

  /**
   * cinder's copy_volume: direct I/O both ways, and `fsync` before dd exits so the copy is on disk
   * before the caller publishes it; `sparse` skips writing zero blocks (thin targets).
   */
  copy(from: string, to: string, sizeGb: number, sparse: boolean): Promise<RunResult> {
    const mib = sizeGb * 1024;
    return this.run(
      [
        'dd', `if=${devicePath(this.vg, from)}`, `of=${devicePath(this.vg, to)}`, 'bs=1M', `count=${mib}`,
        'iflag=direct', 'oflag=direct', sparse ? 'conv=sparse,fsync' : 'conv=fsync', 'status=progress',
      ],
      { timeoutMs: slowestMs(mib, COPY_MIN_MIBPS), copy: true, ...ddMeter(mib * MIB) },
    );
  }

  /** cinder's volume_clear=zero: overwrites a device (an LV's, or a snapshot's `-cow` store) with zeros. */
  zero(device: string, sizeBytes: number, minMiBps: number): Promise<RunResult> {
    const mib = Math.ceil(sizeBytes / MIB);
    return this.run(['dd', 'if=/dev/zero', `of=${device}`, 'bs=1M', `count=${mib}`, 'oflag=direct', 'status=progress'], {
      timeoutMs: slowestMs(mib, minMiBps),
      copy: true,
      ...ddMeter(mib * MIB, 'volume.clear'),
    });
  }
}

const tagArgs = (tags: string[]): string[] => tags.flatMap((t) => ['--addtag', t]);


/** `dd status=progress` redraws `<bytes> bytes (...) copied, ...` on stderr: progress of a copy of `totalBytes`. */
function ddMeter(totalBytes: number, op?: 'volume.clear'): { onStderrLine: (line: string) => void } {
  const report = progressMeter(totalBytes, op);
  return {
    onStderrLine: (line) => {
      const done = /^(\d+) bytes/.exec(line.trim());
      if (done) report(Number(done[1]));
    },
  };
}
