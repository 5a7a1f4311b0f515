// `pnpm soak [--kills N] [--seed S] [--max-minutes M] [--two-agents]`: random operations with 2-4 in
// flight against a real agent (two NFS backends, qcow2 and raw, on local folders), SIGKILL of the agent
// every 0.3-3 s, restart, then a check: every acknowledged operation is reflected in the index, nothing
// transient, the index matches the shares (files and `.info` chains), nothing left over. With
// `--two-agents`, two agents share both folders, each with its own operations, and each kill takes one
// of them or both at random: neither may lose, resurrect or leave behind anything, nor touch the other's
// files. Not part of `pnpm test`.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TEST_TOKEN, auditNfsShare, readsPattern, snapshotReadsPattern, startAgentProcess, writePattern } from '@kindling/agent/testing';

// The soak's agent runs with the test token; its clients find it where users put theirs.
process.env.KINDLING_TOKEN ??= TEST_TOKEN;
import { SoakClient } from './client.mjs';
import { Model } from './model.mjs';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '100' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    'max-minutes': { type: 'string', default: '30' },
    'two-agents': { type: 'boolean', default: false },
  },
});
const KILLS = Number(values.kills);
const SEED = Number(values.seed);
const DEADLINE = Date.now() + Number(values['max-minutes']) * 60_000;
const BACKENDS = ['qcow2', 'raw'];

/** mulberry32: the same seed replays the same choices (timing still varies). */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rng = seeded(SEED);
const between = (lo, hi) => lo + rng() * (hi - lo);

const figures = { kills: 0, acknowledged: 0, cut: 0, restartMs: [] };
/** Unique findings: a lost resource or leftover file is counted once however many checks see it. */
const lost = new Map();
const phantom = new Map();
const transient = new Map();
const leftovers = new Map();
const failures = [];
/** Keeps the first sighting of a finding. */
const note = (map, key, message) => {
  if (!map.has(key)) map.set(key, message);
};

// The share folders, outside every agent's own folder: with --two-agents both agents use them.
const sharesDir = await mkdtemp(join(tmpdir(), 'kindling-soak-shares-'));
const shareOf = (backend) => join(sharesDir, `share-${backend}`);
const start = () =>
  startAgentProcess({ backends: () => BACKENDS.map((b) => ({ name: b, driver: 'nfs', shares: [shareOf(b)], format: b, sparse: true })) });

/** Each agent with what was acknowledged to it. */
const agents = [];
for (let i = 0; i < (values['two-agents'] ? 2 : 1); i++) agents.push({ name: `agent ${i + 1}`, proc: await start(), model: new Model(), client: null });

/** The soak's own write into a volume's file (backends are named after their format). */
async function write({ id, backend, pattern }) {
  try {
    await writePattern(shareOf(backend), { id, location: { format: backend } }, pattern);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: { code: 'WRITE', message: err.message } };
  }
}

/**
 * Runs operations on one agent, `width` in flight, until the agent dies under them or `stop()` says so
 * (another agent was killed); resolves when all have settled.
 */
async function phase({ client, model }, width, stop) {
  const lane = async () => {
    while (!stop()) {
      const pick = model.pick(rng, BACKENDS);
      if (!pick) return;
      pick.uses.forEach((id) => model.busy.add(id));
      const reply = pick.op === 'write' ? await write(pick.args) : await client.call(pick.op, pick.args);
      pick.uses.forEach((id) => model.busy.delete(id));
      if (reply.cut) {
        figures.cut++;
        pick.cut();
        return;
      }
      if (reply.ok) {
        figures.acknowledged++;
        pick.ok(reply.result);
      } else {
        failures.push(`${pick.name} ${JSON.stringify(pick.args)}: ${reply.error.code} ${reply.error.message}`);
        model.forget(pick.uses);
      }
    }
  };
  return Promise.all(Array.from({ length: width }, lane));
}

/** Compares each agent's index with what was acknowledged to it, and all of them with the shares; reloads the models. */
async function check(when, startingUp) {
  const listings = [];
  for (const agent of agents) listings.push({ agent, listing: await agent.client.must('volume.list', {}) });
  for (const { agent, listing } of listings) {
    const { model } = agent;
    const byId = new Map([...listing.volumes, ...listing.snapshots].map((r) => [r.id, r]));
    for (const [id, promise] of model.promised) {
      const record = byId.get(id);
      if (!record) note(lost, id, `${when}: acknowledged ${promise.kind} ${id} is not in ${agent.name}'s index`);
      else if (promise.kind === 'volume' && record.size < promise.minSize) {
        note(lost, id, `${when}: volume ${id} was acknowledged at ${promise.minSize} GiB, the index says ${record.size}`);
      }
    }
    for (const id of model.deleted) if (byId.has(id)) note(phantom, id, `${when}: ${id} was acknowledged deleted, the index has it (${byId.get(id).status})`);
  }
  // The shares hold every agent's volumes: each file must belong to a record of one of them.
  const volumes = listings.flatMap(({ listing }) => listing.volumes);
  const snapshots = listings.flatMap(({ listing }) => listing.snapshots);
  for (const backend of BACKENDS) {
    const vols = volumes.filter((v) => v.backend === backend);
    const audit = await auditNfsShare(shareOf(backend), vols, snapshots.filter((s) => vols.some((v) => v.id === s.volumeId)));
    for (const t of audit.transient) note(transient, t, `${when}: ${t}`);
    for (const b of audit.broken) note(lost, b.split(' ').slice(0, 2).join(' '), `${when}: ${b}`);
    // A starting agent probes its shares: a probe file lives for a moment; one left by a kill stays till the end.
    for (const f of audit.leftovers) if (!(startingUp && f.startsWith('.kindling-probe-'))) note(leftovers, `${backend}/${f}`, `${when}: ${f}`);
  }
  // Data: each settled resource reads what it must (an interrupted revert: either); then only that.
  const share = (r) => shareOf(r.backend);
  for (const { agent, listing } of listings) {
    const { model } = agent;
    for (const r of [...listing.volumes, ...listing.snapshots].filter((x) => x.status === 'available' || x.status === 'in-use')) {
      const accepted = model.expectedData(r);
      if (accepted.length === 0) continue;
      const reads = async (p) => ('volumeId' in r ? snapshotReadsPattern(share(r), r.volumeId, r.id, p) : readsPattern(share(r), r, p));
      let match = null;
      for (const p of accepted) if (match === null && (await reads(p))) match = p;
      if (match === null) note(lost, `data ${r.id}`, `${when}: ${'volumeId' in r ? 'snapshot' : 'volume'} ${r.id} does not read as ${accepted.join(' or ')}`);
      model.patterns.set(r.id, match === null ? [] : [match]);
    }
    // Each finding is counted once: what is reported is not promised or expected any more.
    for (const id of lost.keys()) model.promised.delete(id);
    for (const id of phantom.keys()) model.deleted.delete(id);
    model.load(listing);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (const agent of agents) agent.client = await SoakClient.connect(agent.proc.url);
let stoppedEarly = false;
try {
  for (let k = 1; k <= KILLS; k++) {
    if (Date.now() > DEADLINE) {
      stoppedEarly = true;
      break;
    }
    // One agent, or (two agents) either or both at random.
    const pick = Math.floor(rng() * (agents.length === 1 ? 1 : 3));
    const victims = pick === 2 ? agents : [agents[pick]];
    let stopping = false;
    const running = agents.map((agent) => phase(agent, 2 + Math.floor(rng() * 3), () => stopping));
    await sleep(between(300, 3000));
    for (const agent of victims) await agent.proc.kill();
    figures.kills++;
    stopping = true;
    await Promise.all(running);
    for (const agent of victims) {
      agent.client.close();
      const started = performance.now();
      agent.proc = await agent.proc.restart();
      figures.restartMs.push(performance.now() - started);
      agent.client = await SoakClient.connect(agent.proc.url);
    }
    await check(`after kill ${k} (${victims.map((a) => a.name).join(' and ')})`, true);
    if (k % 10 === 0) console.error(`soak: ${k} kills, ${figures.acknowledged} acknowledged, ${lost.size} lost, ${leftovers.size} leftovers`);
  }
  // The end: a clean stop and start, every resource deleted (each delete must succeed), empty shares.
  for (const agent of agents) {
    agent.client.close();
    await agent.proc.stop();
    agent.proc = await agent.proc.restart();
    agent.client = await SoakClient.connect(agent.proc.url);
  }
  // The agents just started probe their shares (a probe file lives for a moment): a probe left for good
  // is still on a share after everything was deleted, below.
  await check('at the end', true);
  for (const { client } of agents) {
    const { volumes, snapshots } = await client.must('volume.list', {});
    for (const s of snapshots) await client.must('snapshot.delete', { id: s.id }).catch((err) => failures.push(`final ${err.message}`));
    for (const v of volumes) await client.must('volume.delete', { id: v.id }).catch((err) => failures.push(`final ${err.message}`));
  }
  for (const backend of BACKENDS) {
    for (const f of await readdir(shareOf(backend))) note(leftovers, `${backend}/${f}`, `after deleting everything: ${f}`);
  }
} finally {
  for (const agent of agents) {
    agent.client?.close();
    await agent.proc.dispose();
  }
  await rm(sharesDir, { recursive: true, force: true });
}

const sorted = [...figures.restartMs].sort((a, b) => a - b);
const ms = (x) => `${Math.round(x ?? 0)} ms`;
const report = {
  seed: SEED,
  agents: agents.length,
  kills: figures.kills,
  'acknowledged operations': figures.acknowledged,
  'operations cut by kills': figures.cut,
  lost: lost.size,
  phantom: phantom.size,
  transient: transient.size,
  leftovers: leftovers.size,
  'operations failed outside kills': failures.length,
  'restart-to-ready p50': ms(sorted[Math.floor(sorted.length / 2)]),
  'restart-to-ready max': ms(sorted.at(-1)),
};
for (const [label, value] of Object.entries(report)) console.log(`${label.padEnd(32)} ${value}`);
const show = (title, list) => {
  if (list.length === 0) return;
  console.log(`\n${title} (${list.length}; first 10):`);
  for (const line of list.slice(0, 10)) console.log(`  ${line}`);
};
show('lost', [...lost.values()]);
show('phantom', [...phantom.values()]);
show('transient', [...transient.values()]);
show('leftovers', [...leftovers.values()]);
show('failed outside kills', failures);
if (stoppedEarly) console.log(`\nstopped early: --max-minutes reached after ${figures.kills} of ${KILLS} kills`);
const bad = lost.size + phantom.size + transient.size + leftovers.size + failures.length;
process.exit(bad > 0 ? 1 : stoppedEarly ? 2 : 0);
