// `pnpm bench lvm-scale`: what one lvm2 command costs as the VG grows and the host has more devices,
// each way the LVM driver can run it (issue 19 item 4). Figures only.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLoopVg, loopVgUnavailable } from '@kindling/agent/testing';
import { LvmCommands } from '../packages/agent/dist/drivers/lvm/commands.js';
import { LvmDriver } from '../packages/agent/dist/drivers/lvm/driver.js';
import { run } from '../packages/agent/dist/exec/run.js';
import { pct, row, sized } from './stats.mjs';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** An lvm2 uuid: 32 letters and digits as 6-4-4-4-4-4-6. */
const lvmUuid = () => {
  const s = [...randomBytes(32)].map((b) => ALNUM[b % ALNUM.length]).join('');
  return [6, 4, 4, 4, 4, 4, 6].reduce((acc, len) => ({ at: acc.at + len, parts: [...acc.parts, s.slice(acc.at, acc.at + len)] }), { at: 0, parts: [] }).parts.join('-');
};

/** One 1-extent LV in lvm2's metadata text, named and tagged as the driver names and tags volumes. */
const lvText = (pe) => {
  const id = randomUUID();
  return `\t\tvolume-${id} {\n\t\t\tid = "${lvmUuid()}"\n\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n` +
    `\t\t\ttags = ["kindling_id_${id}", "kindling_kind_volume", "kindling_owner_bench"]\n\t\t\tsegment_count = 1\n\n` +
    `\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1\n\n\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n\n` +
    `\t\t\t\tstripes = [\n\t\t\t\t\t"pv0", ${pe}\n\t\t\t\t]\n\t\t\t}\n\t\t}\n`;
};

/**
 * Grows the VG to `n` LVs in one metadata write (vgcfgbackup, LVs added to the text, vgcfgrestore):
 * an lvcreate each would take minutes at 1,000. The new LVs take one extent each, after those before.
 */
async function fillTo(vg, env, dir, have, n) {
  const lvm = (argv) => run(argv, { env });
  const file = join(dir, 'vg.meta');
  await lvm(['vgcfgbackup', '-f', file, vg]);
  let text = await readFile(file, 'utf8');
  const added = Array.from({ length: n - have }, (_, k) => lvText(have + k)).join('');
  text = text.replace(/seqno = (\d+)/, (_, seq) => `seqno = ${Number(seq) + 1}`);
  if (text.includes('\tlogical_volumes {\n')) text = text.replace('\tlogical_volumes {\n', `\tlogical_volumes {\n${added}`);
  else {
    const end = text.lastIndexOf('\n}');
    text = `${text.slice(0, end)}\n\n\tlogical_volumes {\n${added}\t}${text.slice(end)}`;
  }
  await writeFile(file, text);
  await lvm(['vgcfgrestore', '-f', file, vg]);
}

/** The ways to run a command: a process each (the agent's runner), the same with `--devices <pv>`, the lvm shell. */
function variants(vg, env, pv) {
  const processes = new LvmCommands(run, vg, join(env.LVM_SYSTEM_DIR, 'lvm.conf'), false);
  const shell = new LvmCommands(run, vg, join(env.LVM_SYSTEM_DIR, 'lvm.conf'), true);
  const devices = (argv) => run([argv[0], '--devices', pv, ...argv.slice(1)], { env });
  const tags = (id) => ['--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_volume', '--addtag', 'kindling_owner_bench'];
  const tagList = (id) => [`kindling_id_${id}`, 'kindling_kind_volume', 'kindling_owner_bench'];
  return [
    { name: 'process', create: (lv, id) => processes.createLinear(lv, 1, tagList(id)), remove: (lv) => processes.remove(lv), lvs: (lv) => processes.lvs(lv) },
    {
      name: 'process --devices',
      create: (lv, id) => devices(['lvcreate', '-n', lv, '-L', '1g', ...tags(id), vg]),
      remove: (lv) => devices(['lvremove', '--config', 'activation { retry_deactivation = 1 }', '-f', `${vg}/${lv}`]),
      lvs: (lv) => devices(['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', `${vg}/${lv}`]),
    },
    { name: 'lvm shell', create: (lv, id) => shell.createLinear(lv, 1, tagList(id)), remove: (lv) => shell.remove(lv), lvs: (lv) => shell.lvs(lv) },
  ];
}

/** create, lvs and remove of one LV per variant per round, the variants' order rotating: sorted times per variant and step. */
async function measure(ways, n) {
  const times = ways.map(() => ({ create: [], lvs: [], remove: [] }));
  const timed = async (list, fn) => {
    const t0 = process.hrtime.bigint();
    await fn();
    list.push(Number(process.hrtime.bigint() - t0) / 1e6);
  };
  for (let i = -1; i < n; i++) {
    for (let k = 0; k < ways.length; k++) {
      const j = (i + 1 + k) % ways.length;
      const id = randomUUID();
      const lv = `volume-${id}`;
      const t = i < 0 ? { create: [], lvs: [], remove: [] } : times[j];
      await timed(t.create, () => ways[j].create(lv, id));
      await timed(t.lvs, () => ways[j].lvs(lv));
      await timed(t.remove, () => ways[j].remove(lv));
    }
  }
  for (const t of times) for (const list of Object.values(t)) list.sort((a, b) => a - b);
  return times;
}

/**
 * `k` creates queued at once on one VG through the driver (the "740 creates queued gave p50
 * 34 s"): each one's time from the burst to its answer, sorted.
 */
async function queuedCreates(vg, lvmConfFile, k, lvmShell) {
  const config = { name: `queue-${lvmShell}`, driver: 'lvm', volumeGroup: vg, lvmType: 'default', lvmConfFile, volumeClear: 'none', lvmShell };
  const driver = new LvmDriver({ volumeClearMinMiBps: 8, reservedPercentage: 0, maxOverSubscriptionRatio: 20, targetPort: 3260, ...config }, { run, hostId: 'bench' });
  await driver.start();
  const volumes = Array.from({ length: k }, () => ({ id: randomUUID(), size: 1, location: {} }));
  const t0 = performance.now();
  const times = await Promise.all(volumes.map((v) => driver.createVolume(v).then(() => performance.now() - t0)));
  await Promise.all(volumes.map((v) => driver.deleteVolume(v)));
  driver.close();
  return times.sort((a, b) => a - b);
}

export async function lvmScale(say) {
  const why = loopVgUnavailable();
  if (why) {
    say(`lvm-scale: skipped (${why})`);
    return;
  }
  const sizes = sized({ quick: [10, 100], default: [10, 100, 1000], full: [10, 100, 1000] });
  const n = sized({ quick: 2, default: 6, full: 30 });
  const extraDevices = sized({ quick: 2, default: 4, full: 8 });
  say(`lvm-scale: lvm2 per-command cost against VG size (loop VG, activation off, no device filter), ${n} rounds each`);
  const max = sizes.at(-1);
  const burst = sized({ quick: 8, default: 20, full: 100 });
  const fx = await createLoopVg({ sizeMiB: 4096 + max * 4 + burst * 1024, metadataSizeMiB: 16 });
  // As on a host with the default lvm.conf: no filter, so lvm2 reads every block device it finds.
  const dir = await mkdtemp(join(tmpdir(), 'kindling-lvm-scale-'));
  const others = [];
  try {
    await writeFile(join(dir, 'lvm.conf'), (await readFile(fx.lvmConfFile, 'utf8')).replace(/^\s*filter = .*\n/m, ''));
    const env = { LVM_SYSTEM_DIR: dir, LVM_SUPPRESS_FD_WARNINGS: '1' };
    const ways = variants(fx.vg, env, fx.device);
    const report = (label, times) => {
      for (const step of ['create', 'remove', 'lvs']) {
        ways.forEach((w, j) => say(row(`${step} ${label}: ${w.name}`, times[j][step])));
      }
      const p = (j) => pct(times[j].create, 50);
      say(`  create p50 ${label}: --devices ${(p(1) / p(0)).toFixed(2)}x, shell ${(p(2) / p(0)).toFixed(2)}x of a process each`);
    };
    let have = 0;
    for (const size of sizes) {
      await fillTo(fx.vg, env, dir, have, size);
      have = size;
      report(`${size} LVs`, await measure(ways, n));
    }
    // Shell off, on, on, off: the machine's drift falls on both alike.
    const bursts = { false: [], true: [] };
    for (const lvmShell of [false, true, true, false]) bursts[lvmShell].push(...(await queuedCreates(fx.vg, join(dir, 'lvm.conf'), burst, lvmShell)));
    for (const lvmShell of [false, true]) say(row(`${burst} creates queued, ${max} LVs: ${lvmShell ? 'lvm shell' : 'a process each'}`, bursts[lvmShell].sort((a, b) => a - b)));
    say(`  queued create p50, ${max} LVs: shell ${(pct(bursts.true, 50) / pct(bursts.false, 50)).toFixed(2)}x of a process each`);
    for (let i = 0; i < extraDevices; i++) others.push(await createLoopVg({ sizeMiB: 64 }));
    report(`${max} LVs, ${extraDevices} more PVs`, await measure(ways, n));
  } finally {
    for (const other of others) await other.destroy();
    await fx.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}
