// Copies between agents (issue 22): agent-to-agent throughput next to what the disk and qemu-img do with
// the same image on this machine. Two agents, NFS on local folders (qcow2 source, raw target).
import { execFile as execFileCb } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent } from '@kindling/sdk';
import { activeFile, startAgentProcess } from '@kindling/agent/testing';
import { pct, row, sampleMany, sized } from './stats.mjs';

const execFile = promisify(execFileCb);
const MiB = 1024 * 1024;

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
    const [ours, local, convert, dd] = await sampleMany(
      n,
      [
        async () => (await vol.clone({ backend: target })).delete(),
        async () => (await vol.clone()).delete(),
        async (i) => {
          const out = join(dir, `convert-${i}`);
          await execFile('qemu-img', ['convert', '-f', image.format, '-O', 'raw', image.path, out]);
          await rm(out, { force: true });
        },
        () => execFile('dd', [`if=${image.path}`, 'of=/dev/null', 'bs=4M']),
      ],
      0,
    );
    const mibs = (times) => dataMiB / (pct(times, 50) / 1000);
    say(row('dd of the image file to /dev/null', dd));
    say(row('qemu-img convert of the image to raw', convert));
    say(row('same-agent clone (incl. its delete)', local));
    say(row('agent-to-agent copy (incl. the copy delete)', ours));
    say(`  agent-to-agent copy throughput ${mibs(ours).toFixed(0)} MiB/s; dd ${mibs(dd).toFixed(0)} MiB/s; qemu-img convert ${mibs(convert).toFixed(0)} MiB/s`);
    say(`  copy throughput vs same-agent clone          ratio ${(mibs(ours) / mibs(local)).toFixed(2)}   (both flush what they wrote)`);
    say(`  copy throughput vs qemu-img convert          ratio ${(mibs(ours) / mibs(convert)).toFixed(2)}   (aim >= 0.9)`);
    say(`  copy throughput vs dd                        ratio ${(mibs(ours) / mibs(dd)).toFixed(2)}   (dd reads only: an upper bound)`);
    await vol.delete();
    await Promise.all([agentA.close(), agentB.close()]);
  } finally {
    await Promise.all([a.dispose(), b.dispose()]);
    await rm(dir, { recursive: true, force: true });
  }
}
