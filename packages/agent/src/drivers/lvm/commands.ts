import { dirname } from 'node:path';
import type { RunOptions, RunResult, Runner } from '../../exec/run.js';
import { progressMeter } from '../../progress.js';
import { LV_FIELDS, VG_FIELDS } from './report.js';

/** cinder's brick: LV removal can race udev, so deactivation is retried. */
const REMOVE_CONFIG = 'activation { retry_deactivation = 1 }';
/** cinder's retry: a failed `lvremove -f` may leave suspended devices that block every later scan. */
const REMOVE_RETRY_CONFIG = `${REMOVE_CONFIG} devices { ignore_suspended_devices = 1 }`;

const MIB = 1024 * 1024;
/** A copy may take a while; allow about 8 MiB/s before the child is killed. */
const ddTimeoutMs = (mib: number): number => Math.max(120_000, mib * 125);

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

  constructor(
    private readonly run: Runner,
    readonly vg: string,
    lvmConfFile: string | undefined,
  ) {
    this.env = { LVM_SUPPRESS_FD_WARNINGS: '1' };
    if (lvmConfFile) this.env.LVM_SYSTEM_DIR = dirname(lvmConfFile);
  }

  private lvm(argv: string[], options: RunOptions = {}): Promise<RunResult> {
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

  createLinear(lv: string, sizeGb: number, tags: string[]): Promise<RunResult> {
    return this.lvm(['lvcreate', '-n', lv, '-L', `${sizeGb}g`, ...tagArgs(tags), this.vg]);
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
  createSnapshot(lv: string, origin: string, tags: string[], sizeGb: number | null): Promise<RunResult> {
    const size = sizeGb === null ? [] : ['-L', `${sizeGb}g`];
    return this.lvm(['lvcreate', '-s', '-k', 'y', ...size, '-n', lv, ...tagArgs(tags), this.path(origin)]);
  }

  remove(lv: string, retry = false): Promise<RunResult> {
    return this.lvm(['lvremove', '--config', retry ? REMOVE_RETRY_CONFIG : REMOVE_CONFIG, '-f', this.path(lv)]);
  }

  extend(lv: string, sizeGb: number): Promise<RunResult> {
    return this.lvm(['lvextend', '-L', `${sizeGb}g`, this.path(lv)]);
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
    return { ...(await this.lvm(command)), command };
  }

  deactivate(lv: string): Promise<RunResult> {
    return this.lvm(['lvchange', '-a', 'n', this.path(lv)]);
  }

  /** Merges a thick snapshot back into its origin; the snapshot LV is consumed. */
  merge(snapshot: string): Promise<RunResult> {
    return this.lvm(['lvconvert', '--merge', this.path(snapshot)]);
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
      { timeoutMs: ddTimeoutMs(mib), copy: true, ...ddMeter(mib * MIB) },
    );
  }

  /** cinder's volume_clear=zero: overwrites a device (an LV's, or a snapshot's `-cow` store) with zeros. */
  zero(device: string, sizeBytes: number): Promise<RunResult> {
    const mib = Math.ceil(sizeBytes / MIB);
    return this.run(['dd', 'if=/dev/zero', `of=${device}`, 'bs=1M', `count=${mib}`, 'oflag=direct', 'status=progress'], {
      timeoutMs: ddTimeoutMs(mib),
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
