// Start and stop: `kindling-agent --version`, and an agent from spawn to ready (/healthz 200 and an SDK
// connected, small index) then stopped idle, interleaved with a bare `node -e 0` (the floor).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { Agent } from '@kindling/sdk';
import { startAgentProcess } from '@kindling/agent/testing';
import { fmt, pct, sampleMany, sized } from './stats.mjs';

const AGENT_BIN = resolve(import.meta.dirname, '../packages/agent/dist/bin.js');

const node = async (args) => {
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`node ${args.join(' ')}: exit ${code}`);
};

export async function start(say) {
  say('start: process start to ready and idle stop, next to `node -e 0`, interleaved');
  const ready = [];
  const stop = [];
  /** From `t0` to /healthz 200 and an SDK connected. */
  const untilReady = async (proc, t0) => {
    while ((await fetch(new URL('/healthz', proc.url.replace(/^ws/, 'http'))).catch(() => null))?.status !== 200);
    const agent = await Agent.connect(proc.url);
    const ms = performance.now() - t0;
    await agent.close();
    return ms;
  };
  // The first start makes its data dir (token, index, the qemu-img check's memo); an agent's every
  // later start opens that small index again, as a restart or a reboot does: the figure with a target.
  let t0 = performance.now();
  let proc = await startAgentProcess();
  try {
    const first = await untilReady(proc, t0);
    await proc.stop();
    const toReady = async () => {
      t0 = performance.now();
      proc = await proc.restart();
      ready.push(await untilReady(proc, t0));
      const t1 = performance.now();
      await proc.stop();
      stop.push(performance.now() - t1);
    };
    const [bare, version] = await sampleMany(sized({ quick: 2, default: 5, full: 30 }), [() => node(['-e', '0']), () => node([AGENT_BIN, '--version']), toReady], 1);
    const line = (label, times, target) =>
      say(`  ${label.padEnd(44)} p50 ${fmt(pct(times, 50)).padStart(10)}   ${(pct(times, 50) / pct(bare, 50)).toFixed(2)}x node -e 0${target ? `   (target <= ${target} ms on a quiet machine)` : ''}`);
    line('node -e 0', bare);
    line('kindling-agent --version', version, 150);
    line('first start, new data dir, to ready', [first]);
    line('spawn to ready (healthz 200, SDK connected)', ready.sort((a, b) => a - b), 250);
    line('stop when idle (SIGTERM to exit)', stop.sort((a, b) => a - b), 10);
  } finally {
    await proc.dispose();
  }
}
