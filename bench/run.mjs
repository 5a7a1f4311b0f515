// `pnpm bench`: figures and ratios from one run on this machine. Never part of the tests.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile as execFileCb } from 'node:child_process';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { decode, encode, PROTOCOL_VERSION } from '@kindling/protocol';
import { Agent } from '@kindling/sdk';
import { TEST_TOKEN, createLoopVg, loopVgUnavailable, startAgentProcess } from '@kindling/agent/testing';
import { printCosts, recordCosts } from './cost.mjs';
import { launch } from './launch.mjs';
import { move } from './move.mjs';
import { start } from './start.mjs';
import { load } from './load.mjs';
import { scale } from './scale.mjs';
import { lvmScale } from './lvm-scale.mjs';
import { changes } from './changes.mjs';
import { SCALE, ratio, row, sampleMany, samplePair, sized } from './stats.mjs';

const execFile = promisify(execFileCb);
// Bench agents run with the test token; the SDK finds it where users put theirs.
process.env.KINDLING_TOKEN ??= TEST_TOKEN;
// `pnpm bench [section] [--quick|--full]` (stats.mjs reads the scale flag).
const only = process.argv.slice(2).find((a) => !a.startsWith('--'));
const lines = [];
const say = (line) => {
  console.log(line);
  lines.push(line);
};

/** A bare ws + msgpackr client: sends `volume.get` of `id` and decodes the reply, nothing more. */
async function rawClient(url, id, headers = {}) {
  const ws = new WebSocket(url, { headers });
  await once(ws, 'open');
  let waiting;
  ws.on('message', (data) => waiting(decode(data)));
  let next = 0;
  const send = (op, args) => {
    const done = new Promise((r) => (waiting = r));
    ws.send(encode({ id: ++next, op, args }));
    return done;
  };
  return { ws, send, call: () => send('volume.get', { id }) };
}

/** A raw ws + msgpackr echo in another process: the floor under any RPC round trip on this machine. */
async function rawEcho(reply) {
  const server = spawn(process.execPath, [join(import.meta.dirname, 'echo-server.mjs'), JSON.stringify(reply)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = await once(createInterface({ input: server.stdout }), 'line');
  const { ws, call } = await rawClient(`ws://127.0.0.1:${JSON.parse(line).port}`, reply.id);
  const close = () => {
    ws.close();
    server.kill('SIGTERM');
  };
  return { call, close };
}

/** The same bare client on the agent (after hello): the agent's share of the round trip, without the SDK's. */
async function rawAgentClient(url, id) {
  const client = await rawClient(url, id, { authorization: `Bearer ${process.env.KINDLING_TOKEN}` });
  await client.send('hello', { protocolVersion: PROTOCOL_VERSION });
  return { call: client.call, close: () => client.ws.close() };
}

/** An agent holding one volume, and a second session that loaded it from JSON: its refresh() is exactly one volume.get. */
async function oneVolume(proc) {
  const agent = await Agent.connect(proc.url);
  const vol = await (await agent.backend('nfs')).createVolume({ size: 1, name: 'bench' });
  const reader = await Agent.connect(proc.url);
  const loaded = reader.load(vol.jsons);
  const close = async () => {
    await reader.close();
    await vol.delete();
    await agent.close();
  };
  return { vol, refresh: () => loaded.refresh(), close };
}

async function wire() {
  say('wire: one metadata op (volume.get) through SDK and agent, next to raw ws + msgpackr');
  const n = sized({ quick: 20, default: 3000, full: 10000 });
  // Steady state, as a controller making calls all day sees it: V8 optimises the SDK's longer path later
  // than the echo's few lines, so a short warm-up measured the compiler (1.34-1.42 with 300 calls).
  const WARMUP = sized({ quick: 5, default: 3000, full: 3000 });
  // The ratio from an agent that records no costs (a line per request would be part of what is measured).
  const proc = await startAgentProcess();
  try {
    const one = await oneVolume(proc);
    const echo = await rawEcho(one.vol.toDict());
    const bare = await rawAgentClient(proc.url, one.vol.id);
    // Interleaved, so the load of the machine's other work falls on both alike.
    const [ours, raw] = await samplePair(n, one.refresh, echo.call, WARMUP);
    // Not a target: where the rest is, the agent's side or the SDK's (a pair of its own, so the figure
    // above stays the pair it always was).
    const [agentOnly, raw2] = await samplePair(n, bare.call, echo.call, WARMUP);
    echo.close();
    bare.close();
    say(row('raw ws + msgpackr echo', raw));
    say(row('SDK -> agent volume.get -> SDK', ours));
    say(ratio('volume.get vs raw echo', ours, raw, 1.3));
    say(row('raw client -> agent volume.get', agentOnly));
    say(ratio('agent alone (raw client) vs raw echo', agentOnly, raw2, 1.3));
    await one.close();
  } finally {
    await proc.dispose();
  }
  const costs = await recordCosts(() => startAgentProcess());
  try {
    const one = await oneVolume(costs.started);
    for (let i = 0; i < Math.ceil(n / 10); i++) await one.refresh();
    printCosts(say, costs.read(), ['volume.get']);
    await one.close();
  } finally {
    await costs.started.dispose();
    costs.dispose();
  }
}

async function nfsCreateDelete() {
  say('nfs: createVolume + delete (local-folder share, qcow2 and raw), next to the bare qemu-img create + rm');
  // One agent, a backend per format on one share folder each, so the four workloads interleave.
  const backends = (dir) => ['qcow2', 'raw'].map((format) => ({ name: format, driver: 'nfs', shares: [join(dir, format)], format }));
  const costs = await recordCosts(() => startAgentProcess({ backends }));
  const proc = costs.started;
  const dir = await mkdtemp(join(tmpdir(), 'kindling-bench-'));
  try {
    const agent = await Agent.connect(proc.url);
    const ours = (backend) => async () => {
      const vol = await backend.createVolume({ size: 1 });
      await vol.delete();
    };
    const bare = (format) => async (i) => {
      const file = join(dir, `volume-${format}-${i}`);
      await execFile('qemu-img', ['create', '-f', format, file, '1G']);
      await execFile('rm', ['-f', file]);
    };
    const [qcow2, bareQcow2, raw, bareRaw] = await sampleMany(
      sized({ quick: 3, default: 30, full: 60 }),
      [ours(await agent.backend('qcow2')), bare('qcow2'), ours(await agent.backend('raw')), bare('raw')],
    );
    say(row('qemu-img create -f qcow2 + rm', bareQcow2));
    say(row('SDK createVolume + delete (qcow2)', qcow2));
    say(row('qemu-img create -f raw + rm', bareRaw));
    say(row('SDK createVolume + delete (raw)', raw));
    say(ratio('nfs qcow2 create+delete vs bare commands', qcow2, bareQcow2, 1.15));
    say(ratio('nfs raw create+delete vs bare commands', raw, bareRaw, 1.15));
    printCosts(say, costs.read(), ['volume.create', 'volume.delete']);
    await agent.close();
  } finally {
    await proc.dispose();
    costs.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

async function lvmCreateDelete() {
  const why = loopVgUnavailable();
  if (why) {
    say(`lvm: skipped (${why})`);
    return;
  }
  say('lvm: createVolume + delete (thick, loop-backed VG), next to the bare lvcreate + lvremove');
  const vg = await createLoopVg({ sizeMiB: 8192 });
  const costs = await recordCosts(() => startAgentProcess({
    // volumeClear none: this kernel has no device nodes to zero, and the pair measured is lvcreate + lvremove.
    backends: () => [{ name: 'lvm', driver: 'lvm', volumeGroup: vg.vg, lvmConfFile: vg.lvmConfFile, volumeClear: 'none' }],
  }));
  const proc = costs.started;
  try {
    const agent = await Agent.connect(proc.url);
    const lvm = await agent.backend('lvm');
    const [ours, bare] = await samplePair(
      sized({ quick: 3, default: 20, full: 40 }),
      async () => {
        const vol = await lvm.createVolume({ size: 1 });
        await vol.delete();
      },
      // The argv the driver runs (tags name the Kindling id; cinder's lvremove config), so the ratio
      // is what the agent adds, not what the tags cost lvm2.
      async () => {
        const id = randomUUID();
        await vg.lvm(['lvcreate', '-n', `volume-${id}`, '-L', '1g', '--addtag', `kindling_id_${id}`, '--addtag', 'kindling_kind_volume', vg.vg]);
        await vg.lvm(['lvremove', '--config', 'activation { retry_deactivation = 1 }', '-f', `${vg.vg}/volume-${id}`]);
      },
    );
    say(row('lvcreate + lvremove (the driver\'s argv)', bare));
    say(row('SDK createVolume + delete', ours));
    say(ratio('lvm create+delete vs bare commands', ours, bare, 1.1));
    printCosts(say, costs.read(), ['volume.create', 'volume.delete']);
    await agent.close();
  } finally {
    await proc.dispose();
    costs.dispose();
    await vg.destroy();
  }
}

/** A section script that failed fails the run: the quick-mode test must see it. */
function failedSection(line) {
  say(line);
  process.exitCode = 1;
}

function fleet() {
  const result = spawnSync(process.execPath, [join(import.meta.dirname, 'fleet.mjs')], { stdio: 'inherit' });
  if (result.status !== 0) failedSection(`fleet: bench/fleet.mjs exited with ${result.status}`);
}

function csi() {
  const result = spawnSync(process.execPath, [join(import.meta.dirname, 'csi.mjs')], { stdio: 'inherit' });
  if (result.status !== 0) failedSection(`csi: bench/csi.mjs exited with ${result.status}`);
}

const sections = {
  start: () => start(say),
  launch: () => launch(say),
  wire,
  nfs: nfsCreateDelete,
  lvm: lvmCreateDelete,
  'lvm-scale': () => lvmScale(say),
  fleet,
  load,
  scale: () => scale(say),
  csi,
  changes: () => changes(say),
  move: () => move(say),
};
console.log(`kindling bench on ${new Date().toISOString()} (node ${process.version}, protocol ${PROTOCOL_VERSION}, scale ${SCALE})`);
for (const [name, section] of Object.entries(sections)) {
  if (only && only !== name) continue;
  await section();
  console.log('');
}
