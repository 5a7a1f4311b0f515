// Launch variants for one command (`true`), interleaved: what the agent's guarantee (no child outlives it,
// its forks included) costs over a plain spawn in a group of its own. The agent's runner is one exec
// (Node's spawn, marked for its reaper); execa and the former setpriv+timeout wrappers are kept as the
// measured reasons for that choice (docs/architecture.md, "Launching a command").
import { spawn } from 'node:child_process';
import { once } from 'node:events';
// execa is the agent's dev dependency (for this comparison only), not the workspace root's: taken from the agent's folder.
import { execa } from '../packages/agent/node_modules/execa/index.js';
import { Children } from '../packages/agent/dist/exec/children.js';
import { createRunner } from '../packages/agent/dist/exec/run.js';
import { fmt, pct, sampleMany, sized } from './stats.mjs';

const WRAPPED = ['setpriv', '--pdeathsig', 'ALRM', '--', 'timeout', '--signal', 'KILL', '0', 'true'];
const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

const plain = async (argv) => {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
  child.stdout.resume();
  child.stderr.resume();
  const [code] = await once(child, 'close');
  if (code !== 0) throw new Error(`${argv.join(' ')}: exit ${code}`);
};
const lean = (argv) =>
  execa(argv[0], argv.slice(1), { env, extendEnv: false, stdin: 'ignore', detached: true, cleanup: false, stripFinalNewline: false });
const run = createRunner(new Children());

export async function launch(say) {
  say('launch: one command (`true`) per variant, own process group each, interleaved');
  const variants = [
    ['plain spawn: true', () => plain(['true'])],
    ['execa lean: true', () => lean(['true'])],
    ['plain spawn: setpriv+timeout true (before)', () => plain(WRAPPED)],
    ["the agent's runner (exec/run.ts)", () => run(['true'])],
  ];
  const times = await sampleMany(sized({ quick: 5, default: 100, full: 1000 }), variants.map(([, fn]) => fn), 10);
  const base = pct(times[0], 50);
  variants.forEach(([label], i) => {
    const p50 = pct(times[i], 50);
    say(`  ${label.padEnd(44)} p50 ${fmt(p50).padStart(10)}   p95 ${fmt(pct(times[i], 95)).padStart(10)}   ${(p50 / base).toFixed(2)}x plain, +${fmt(p50 - base)}`);
  });
}
