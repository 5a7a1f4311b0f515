// A small lvm2 world for the LVM driver's crash tests: LVs with contents (and extents), changed by the
// commands the driver runs through the recording runner; an agent can be made to die at any command.
import { BackendError } from '@kindling/protocol';
import type { RunResult, Runner } from '../exec/run.js';
import { LvmDriver } from '../drivers/lvm/driver.js';
import { EXTENT, GIB, S1, V1, VG, config, pool, reportJson, type FakeLv } from './lvm-fake.js';


export interface WorldLv extends FakeLv {
  /** What the LV holds, as a label: `data:<who>`, `zeros`, `empty`, `partial:<what>`. */
  content: string;
  /** For a thick snapshot: what its copy-on-write store holds (the origin's old blocks, or zeros). */
  cow?: string;
  /** A merging snapshot: lvm2 hides it (`[name]`) until the merge is done. */
  hidden?: boolean;
  /** A thick LV's physical extents (a snapshot's: its COW store's), as `lvs -o seg_pe_ranges` says. */
  pe?: string;
}

export const notFound = (argv: readonly string[], what: string): BackendError =>
  new BackendError(`${argv[0]} failed`, { command: [...argv], exitCode: 5, stderrTail: `  Failed to find logical volume "${VG}/${what}"` });

/** Where an agent dies: before the matching command runs, after it, or (dd) halfway through it. */
export interface Crash {
  at: number;
  when: 'before' | 'after' | 'during';
}

/**
 * LVs with contents, changed by the commands the driver runs. `agent()` is one agent process: after
 * its crash point every later command fails unrun, as when the process is gone (no cleanup runs).
 */
export class World {
  readonly lvs = new Map<string, WorldLv>();
  /** Thick LVs removed while they (or their COW store) still held data: what the next tenant could read. */
  readonly leaked: string[] = [];
  /** Extents freed without being zeroed (a merged snapshot's COW store), with what they hold. */
  readonly freed = new Map<string, string>();
  private nextPe = 1024;

  /** Free extents that still hold a tenant's old blocks: what the next lvcreate could hand out. */
  exposed(): string[] {
    return [...this.freed].filter(([, held]) => held !== 'zeros' && held !== 'empty').map(([pe]) => pe);
  }

  constructor(lvs: WorldLv[]) {
    for (const lv of lvs) this.lvs.set(lv.name, lv);
  }

  agent(crash?: Crash): { run: Runner; calls: string[][] } {
    const calls: string[][] = [];
    let dead = false;
    const run: Runner = async (argv) => {
      if (dead) throw new Error('the agent is gone');
      const i = calls.push([...argv]) - 1;
      if (crash?.at === i && crash.when !== 'after') {
        dead = true;
        if (crash.when === 'during') this.apply(argv, true);
        throw new Error('killed');
      }
      // Dying after a command that failed (an lvs of an LV not there) is dying all the same.
      const out = await Promise.resolve()
        .then(() => this.apply(argv, false))
        .finally(() => {
          if (crash?.at === i) dead = true;
        });
      if (dead) throw new Error('killed');
      return out;
    };
    return { run, calls };
  }

  private get(argv: readonly string[], path: string | undefined): WorldLv {
    const name = (path ?? '').replace(`${VG}/`, '');
    const lv = this.lvs.get(name);
    if (!lv) throw notFound(argv, name);
    return lv;
  }

  private apply(argv: readonly string[], halfway: boolean): RunResult {
    const ok = { stdout: '', stderr: '' };
    const last = argv.at(-1);
    const opt = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
    const tags = argv.flatMap((a, i) => (argv[i - 1] === '--addtag' ? [a] : []));
    switch (argv[0]) {
      case 'lvm':
        return { stdout: reportJson([...this.lvs.values()].filter((l) => !l.hidden)), stderr: '' };
      case 'lvs':
        if (argv.includes('seg_pe_ranges')) return { stdout: `  ${this.get(argv, last).pe ?? ''}\n`, stderr: '' };
        return { stdout: JSON.stringify({ report: [{ lv: JSON.parse(reportJson([this.get(argv, last)])).report[0].lv }] }), stderr: '' };
      case 'lvcreate': {
        const name = opt('-n') ?? '';
        if (this.lvs.has(name)) throw new BackendError('lvcreate failed', { command: [...argv], exitCode: 5, stderrTail: `  Logical Volume "${name}" already exists` });
        const gb = (flag: string): number => Number(opt(flag)?.replace('g', '')) * GIB;
        const pe = (): string => `/dev/pv0:${this.nextPe}-${(this.nextPe += 256) - 1}`;
        if (argv.includes('-s')) {
          // A COW snapshot pinned to PV ranges (after the origin) gets exactly those extents, and what they hold.
          const pin = argv.slice(argv.findIndex((a) => a.startsWith(`${VG}/`)) + 1);
          const origin = this.get(argv, argv.find((a) => a.startsWith(`${VG}/`)));
          const thin = !argv.includes('-L') && !argv.includes('-l');
          if (pin.some((r) => !this.freed.has(r))) throw new BackendError('lvcreate failed', { command: [...argv], exitCode: 5, stderrTail: '  Insufficient suitable allocatable extents' });
          const held = pin.map((r) => this.freed.get(r)).find((c) => c !== undefined);
          for (const r of pin) this.freed.delete(r);
          this.lvs.set(name, {
            name, size: thin ? origin.size : argv.includes('-l') ? Number(opt('-l')) * EXTENT : gb('-L'), tags, origin: origin.name, content: origin.content,
            attr: thin ? 'Vwi---tz-k' : 'swi-a-s---', pool: thin ? pool.name : '', cow: thin ? undefined : (held ?? 'empty'),
            ...(thin ? {} : { pe: pin.length ? pin.join(' ') : pe() }),
          });
        } else if (argv.includes('-T')) {
          this.lvs.set(name, { name, size: gb('-V'), tags, attr: 'Vwi-a-tz--', pool: pool.name, content: 'zeros' });
        } else {
          this.lvs.set(name, { name, size: gb('-L'), tags, attr: '-wi-a-----', content: 'empty', pe: pe() });
        }
        return ok;
      }
      case 'lvremove': {
        const lv = this.get(argv, last);
        const thin = (lv.pool ?? '') !== '';
        if (!thin && (lv.origin ? lv.cow !== 'zeros' : lv.content !== 'zeros')) this.leaked.push(lv.name);
        this.lvs.delete(lv.name);
        return ok;
      }
      case 'lvrename': {
        const [, , from = '', to = ''] = argv;
        const lv = this.get(argv, `${VG}/${from}`);
        if (this.lvs.has(to)) throw new BackendError('lvrename failed', { command: [...argv], exitCode: 5, stderrTail: `  Logical Volume "${to}" already exists` });
        this.lvs.delete(from);
        this.lvs.set(to, { ...lv, name: to });
        for (const other of this.lvs.values()) if (other.origin === from) other.origin = to;
        return ok;
      }
      case 'lvextend': {
        const lv = this.get(argv, last);
        const size = Number(opt('-L')?.replace('g', '')) * GIB;
        if (size === lv.size) throw new BackendError('lvextend failed', { command: [...argv], exitCode: 5, stderrTail: '  New size (256 extents) matches existing size (256 extents).' });
        if (!lv.pool && lv.attr?.[4] === 'a' && [...this.lvs.values()].some((s) => s.origin === lv.name && !s.pool)) {
          throw new BackendError('lvextend failed', { command: [...argv], exitCode: 5, stderrTail: '  Snapshot origin volumes can be resized only while inactive: try lvchange -an.' });
        }
        lv.size = size;
        return ok;
      }
      case 'lvchange': {
        const lv = this.get(argv, last);
        const tagged = (flag: string): string[] => argv.flatMap((a, i) => (argv[i - 1] === flag ? [a] : []));
        lv.tags = [...(lv.tags ?? []).filter((t) => !tagged('--deltag').includes(t)), ...tagged('--addtag')];
        const state = opt('-a');
        if (state) lv.attr = `${(lv.attr ?? '-wi-------').slice(0, 4)}${state === 'y' ? 'a' : '-'}${(lv.attr ?? '-wi-------').slice(5)}`;
        // Activating an origin lets a merge lvm2 had to defer (or was interrupted in) run to its end.
        const merging = [...this.lvs.values()].find((s) => s.origin === lv.name && s.hidden);
        if (state === 'y' && merging) this.merge(merging);
        return ok;
      }
      case 'lvconvert': {
        const snap = this.get(argv, last);
        // Halfway: the merge started (deferred, or the agent died while lvconvert waited for it).
        if (halfway) {
          snap.hidden = true;
          const origin = this.lvs.get(snap.origin ?? '');
          if (origin) origin.attr = `O${(origin.attr ?? '').slice(1)}`;
        } else this.merge(snap);
        return ok;
      }
      case 'dd': {
        const from = (argv.find((a) => a.startsWith('if=')) ?? '').slice(3);
        const to = (argv.find((a) => a.startsWith('of=')) ?? '').slice(3);
        if (from === '/dev/zero') {
          const cow = [...this.lvs.values()].find((l) => to === `/dev/mapper/${VG.replace(/-/g, '--')}-${l.name.replace(/-/g, '--')}-cow`);
          if (cow) cow.cow = halfway ? 'partial' : 'zeros';
          else this.get(argv, to.replace(`/dev/${VG}/`, '')).content = halfway ? 'partial' : 'zeros';
          return ok;
        }
        const source = this.get(argv, from.replace(`/dev/${VG}/`, ''));
        this.get(argv, to.replace(`/dev/${VG}/`, '')).content = halfway ? `partial:${source.content}` : source.content;
        return ok;
      }
      default:
        throw new Error(`the world does not know ${argv.join(' ')}`);
    }
  }

  private merge(snap: WorldLv): void {
    // lvm2 drops the merged snapshot: its COW store's extents are freed as they are, unzeroed.
    if (snap.pe) this.freed.set(snap.pe, snap.cow ?? 'empty');
    const origin = this.lvs.get(snap.origin ?? '');
    if (origin) {
      origin.content = snap.content;
      origin.attr = `-${(origin.attr ?? '').slice(1)}`;
    }
    this.lvs.delete(snap.name);
  }
}

export const DATA = 'data:source';
export const SNAP = 'data:snapshot';

/** The VG a crash test starts from: a source volume with its data, and a snapshot of older data. */
export function sourceWorld(thinLvs: boolean): World {
  const volume = thinLvs
    ? { name: `volume-${V1}`, size: GIB, tags: [`kindling_id_${V1}`, 'kindling_kind_volume'], attr: 'Vwi-a-tz--', pool: pool.name, content: DATA }
    : { name: `volume-${V1}`, size: GIB, tags: [`kindling_id_${V1}`, 'kindling_kind_volume'], attr: 'owi-a-s---', content: DATA, pe: '/dev/pv0:0-255' };
  const snapshot = {
    name: `_snapshot-${S1}`, size: GIB, origin: `volume-${V1}`, content: SNAP,
    tags: [`kindling_id_${S1}`, 'kindling_kind_snapshot', `kindling_vol_${V1}`],
    ...(thinLvs ? { attr: 'Vri---tz-k', pool: pool.name } : { attr: 'swi-a-s---', cow: 'data:old blocks', pe: '/dev/pv0:256-511' }),
  };
  return new World([...(thinLvs ? [{ ...pool, content: '' }] : []), volume, snapshot]);
}

export async function agentOn(world: World, thinLvs: boolean, crash?: Crash): Promise<{ driver: LvmDriver; calls: string[][] }> {
  const { run, calls } = world.agent(crash);
  const driver = new LvmDriver(config({ lvmType: thinLvs ? 'thin' : 'default', volumeClear: 'zero' }), {
    run,
    hostId: 'host-a',
    hostname: 'agent-host',
    deviceExists: async () => true,
    sleep: async () => undefined,
  });
  await driver.start();
  return { driver, calls };
}

/** Runs `op` once to count its commands, then once per command and crash point in a fresh world. */
export async function everyCrash(
  thinLvs: boolean,
  op: (driver: LvmDriver) => Promise<unknown>,
  check: (world: World, driver: LvmDriver, crash: Crash) => Promise<void>,
): Promise<number> {
  const clean = await agentOn(sourceWorld(thinLvs), thinLvs);
  const before = clean.calls.length;
  await op(clean.driver);
  const steps = clean.calls.length - before;
  for (let at = before; at < before + steps; at++) {
    for (const when of ['before', 'during', 'after'] as const) {
      const world = sourceWorld(thinLvs);
      const crash = { at, when };
      const { driver } = await agentOn(world, thinLvs, crash);
      // A crash in a step whose failure is swallowed (a temporary snapshot's cleanup) still ends the agent.
      await op(driver).catch(() => undefined);
      // The restarted agent: recovery removes what scan reports as left over, before serving.
      const restarted = (await agentOn(world, thinLvs)).driver;
      for (const leftover of (await restarted.scan()).leftovers) await restarted.removeLeftover(leftover);
      await check(world, restarted, crash);
    }
  }
  return steps;
}

export const names = (world: World): string[] => [...world.lvs.keys()].filter((n) => n !== pool.name).sort();
export const content = (world: World, lv: string): string | undefined => world.lvs.get(lv)?.content;
