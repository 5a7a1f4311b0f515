// Copies between agents (issue 22): agent-to-agent throughput next to what the disk and qemu-img do with
// the same image on this machine. Two agents, NFS on local folders (qcow2 source, raw target).
import { execFile as execFileCb } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent } from '@kindling/sdk';
import { activeFile, startAgentProcess } from '@kindling/agent/testing';
import { pct, row, sampleMany, sized } from './stats.mjs';

const execFile = promisify(execFileCb);
const MiB = 1024 * 1024;

/** A process's CPU time so far (user + system), in ms: a figure the machine's load does not skew as much as wall time. */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export async function move(say) {
  const dataMiB = sized({ quick: 64, default: 512, full: 2048 });
  const n = sized({ quick: 1, default: 3, full: 5 });
  say(`move: a ${dataMiB} MiB-data volume copied agent to agent (vol.clone({ backend }) of another agent), next to a clone on the source agent and the same image read by dd and converted by qemu-img`);
  const dir = await mkdtemp(join(tmpdir(), 'kindling-bench-move-'));
  const [a, b] = await Promise.all([
    startAgentProcess(),
    startAgentProcess({ backends: (d) => [{ name: 'nfs', driver: 'nfs', shares: [join(d, 'share')], format: 'raw' }] }),
  ]);
  try {
    const [agentA, agentB] = await Promise.all([Agent.connect(a.url), Agent.connect(b.url)]);
    const vol = await (await agentA.backend('nfs')).createVolume({ size: Math.max(1, Math.ceil(dataMiB / 1024)) });
    const image = await activeFile(join(a.dir, 'share'), vol.toDict());
    await execFile('qemu-io', ['-f', image.format, '-c', `write -P 0x5a 0 ${dataMiB}M`, image.path]);
    const target = await agentB.backend('nfs');
    const cpu = { source: 0, target: 0, copies: 0 };
    const [ours, local, convert, flushed, dd] = await sampleMany(
      n,
      [
        async () => {
          const [s0, t0] = [cpuMs(a.child.pid), cpuMs(b.child.pid)];
          const copy = await vol.clone({ backend: target });
          cpu.source += cpuMs(a.child.pid) - s0;
          cpu.target += cpuMs(b.child.pid) - t0;
          cpu.copies++;
          await copy.delete();
        },
        async () => (await vol.clone()).delete(),
        async (i) => {
          const out = join(dir, `convert-${i}`);
          await execFile('qemu-img', ['convert', '-f', image.format, '-O', 'raw', image.path, out]);
          await rm(out, { force: true });
        },
        // qemu-img convert flushes nothing by default (cache=unsafe); the agents flush what they wrote
        async (i) => {
          const out = join(dir, `flushed-${i}`);
          await execFile('qemu-img', ['convert', '-t', 'writeback', '-f', image.format, '-O', 'raw', image.path, out]);
          await rm(out, { force: true });
        },
        () => execFile('dd', [`if=${image.path}`, 'of=/dev/null', 'bs=4M']),
      ],
      0,
    );
    const mibs = (times) => dataMiB / (pct(times, 50) / 1000);
    say(row('dd of the image file to /dev/null', dd));
    say(row('qemu-img convert of the image to raw', convert));
    say(row('qemu-img convert -t writeback (flushed)', flushed));
    say(row('same-agent clone (incl. its delete)', local));
    say(row('agent-to-agent copy (incl. the copy delete)', ours));
    say(`  agent-to-agent copy throughput ${mibs(ours).toFixed(0)} MiB/s; dd ${mibs(dd).toFixed(0)} MiB/s; qemu-img convert ${mibs(convert).toFixed(0)} MiB/s`);
    say(`  copy throughput vs same-agent clone          ratio ${(mibs(ours) / mibs(local)).toFixed(2)}   (both flush what they wrote)`);
    say(`  copy throughput vs qemu-img convert          ratio ${(mibs(ours) / mibs(convert)).toFixed(2)}   (aim >= 0.9; convert does not flush)`);
    say(`  copy throughput vs qemu-img convert, flushed ratio ${(mibs(ours) / mibs(flushed)).toFixed(2)}`);
    const perGiB = (ms) => ((ms / cpu.copies / dataMiB) * 1024 / 1000).toFixed(2);
    say(`  agent CPU per GiB copied: source ${perGiB(cpu.source)} s, target ${perGiB(cpu.target)} s (incl. warm-up copies); load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    say(`  copy throughput vs dd                        ratio ${(mibs(ours) / mibs(dd)).toFixed(2)}   (dd reads only: an upper bound)`);
    await vol.delete();
    await Promise.all([agentA.close(), agentB.close()]);
  } finally {
    await Promise.all([a.dispose(), b.dispose()]);
    await rm(dir, { recursive: true, force: true });
  }
}
