import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mask, runCli, type CliResult } from '../packages/cli/src/testing/run-cli.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The fleet forms of the kindling CLI: two real agents (NFS on folders), and one address nobody answers.
const TOKEN = 'cli-fleet-token-0123456789';
const DEAD = 'ws://127.0.0.1:1';

let a: AgentProcess;
let b: AgentProcess;
let dir: string;
const kindling = (...args: string[]): Promise<CliResult> => runCli(args, { env: { KINDLING_TOKEN: TOKEN } });
const parse = <T>(r: CliResult): T => {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(r.stdout) as T;
};

beforeAll(async () => {
  [a, b] = await Promise.all([startAgentProcess({ token: TOKEN }), startAgentProcess({ token: TOKEN })]);
  dir = await mkdtemp(join(tmpdir(), 'kindling-cli-fleet-'));
});
afterAll(async () => {
  await Promise.all([a?.dispose(), b?.dispose()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Each step is a process start and connections to every agent: on a loaded 2-core host a scenario takes a while.
describe('kindling over a fleet', { timeout: 120_000 }, () => {
  it('places creations over the fleet, lists and checks health over every agent', async () => {
    const agents = `${a.url},${b.url}`;
    // The second goes where the first did not: the other agent has more room left.
    const first = parse<{ agent: { url: string } }>(await kindling('--agents', agents, 'volume', 'create', '--size', '1', '--name', 'one', '--json'));
    const second = parse<{ agent: { url: string } }>(await kindling('--agents', agents, 'volume', 'create', '--size', '1', '--name', 'two', '--driver', 'nfs', '--json'));
    expect([first.agent.url, second.agent.url].sort()).toEqual([a.url, b.url].sort());

    const list = await kindling('--agents', agents, 'volume', 'list');
    expect(list.code).toBe(0);
    expect(mask(list.stdout)).toMatchInlineSnapshot(`
      "AGENT                      ID                                     NAME   SIZE   STATUS      BACKEND   SNAPSHOTS   ATTACHED   CREATED
      ws://127.0.0.1:PPPPP/rpc   id-1................................   one    1G     available   nfs       0           0          YYYY-MM-DDTHH:MM:SS.mmmZ
      ws://127.0.0.1:PPPPP/rpc   id-2................................   two    1G     available   nfs       0           0          YYYY-MM-DDTHH:MM:SS.mmmZ
      "
    `);
    const listed = parse<{ name: string; agent: { url: string; hostId: string } }[]>(await kindling('--agents', agents, 'volume', 'list', '--json'));
    // Rows come as each agent's pages do: in no order across agents.
    expect(listed.map((v) => [v.name, v.agent.url]).sort()).toEqual([
      ['one', first.agent.url],
      ['two', second.agent.url],
    ]);

    // A volume is found by name on whichever agent holds it.
    expect(parse(await kindling('--agents', agents, 'volume', 'show', 'two', '--json'))).toMatchObject({ name: 'two', agent: { url: second.agent.url } });

    const health = await kindling('--agents', agents, 'health');
    expect(health.code).toBe(0);
    expect(mask(health.stdout)).toMatchInlineSnapshot(`
      "AGENT                      HOST                                   LINK   READY   BACKENDS    PROBLEM
      ws://127.0.0.1:PPPPP/rpc   id-1................................   up     yes     nfs:ready   -
      ws://127.0.0.1:PPPPP/rpc   id-2................................   up     yes     nfs:ready   -
      "
    `);

    const backends = await kindling('--agents', agents, 'backend', 'list');
    expect(mask(backends.stdout)).toMatchInlineSnapshot(`
      "AGENT                      NAME   DRIVER
      ws://127.0.0.1:PPPPP/rpc   nfs    nfs
      ws://127.0.0.1:PPPPP/rpc   nfs    nfs
      "
    `);
  });

  it('prints what answered when an agent is down, warns about it and exits 11', async () => {
    const agentsFile = join(dir, 'agents');
    await writeFile(agentsFile, `# the fleet\n${a.url}\n${b.url}\n\n${DEAD}   # decommissioned\n`);

    const list = await kindling('--agents-file', agentsFile, 'volume', 'list', '-o', 'jsonl');
    expect(list.code).toBe(11);
    // JSON rows come as each agent's pages arrive: in no order across agents.
    expect(list.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { name: string }).name).sort()).toEqual(['one', 'two']);
    expect(list.stderr).toMatch(/^warning: ws:\/\/127\.0\.0\.1:1: UNAVAILABLE: cannot reach the agent[^\n]*\n$/);

    const health = await kindling('--agents-file', agentsFile, 'health', '--json');
    expect(health.code).toBe(7);
    const report = JSON.parse(health.stdout) as { url: string; link: string; ready: boolean }[];
    expect(report.map((h) => [h.url, h.link, h.ready])).toEqual([
      [a.url, 'up', true],
      [b.url, 'up', true],
      [DEAD, 'down', false],
    ]);
  });

  it('refuses the commands about one agent over a fleet (exit 2)', async () => {
    const r = await kindling('--agents', `${a.url},${b.url}`, 'kv', 'get', 'k');
    expect(r).toEqual({ code: 2, stdout: '', stderr: 'error: INVALID_ARGUMENT: kv talks to one agent: give --url, not a fleet\n' });
  });

  it('wants --yes for a destructive command when there is no terminal to ask on (exit 2, nothing deleted)', async () => {
    const vol = parse<{ id: string }>(await kindling('--url', a.url, 'volume', 'create', '--size', '1', '--name', 'kept', '--json'));
    for (const args of [['volume', 'delete', vol.id], ['snapshot', 'delete', 'no-such-snapshot'], ['volume', 'revert', vol.id, 'no-such-snapshot']]) {
      const r = await kindling('--url', a.url, ...args);
      expect({ args, ...r }).toEqual({ args, code: 2, stdout: '', stderr: `error: INVALID_ARGUMENT: ${args[0]} ${args[1]} destroys data: confirm with --yes (no terminal to ask on)\n` });
    }
    expect(parse(await kindling('--url', a.url, 'volume', 'show', vol.id, '--json'))).toMatchObject({ name: 'kept', status: 'available' });
    expect(parse(await kindling('--url', a.url, 'volume', 'delete', vol.id, '--yes', '--json'))).toEqual({ kind: 'volume', id: vol.id, status: 'deleted' });
  });

  // Last: it stops agent b.
  it('with an agent down, refuses changes by name (exit 7, naming it) unless --agent pins one, and reads a volume there as UNAVAILABLE, not NOT_FOUND', async () => {
    const agents = `${a.url},${b.url}`;
    const onA = parse<{ id: string }>(await kindling('--url', a.url, 'volume', 'create', '--size', '1', '--name', 'db', '--json'));
    parse(await kindling('--url', b.url, 'volume', 'create', '--size', '1', '--name', 'db', '--json'));
    const onlyB = parse<{ id: string }>(await kindling('--url', b.url, 'volume', 'create', '--size', '1', '--name', 'only-b', '--json'));
    parse(await kindling('--url', a.url, 'snapshot', 'create', onA.id, '--name', 'before', '--json'));
    await b.stop();

    for (const args of [['volume', 'delete', 'db', '--yes'], ['volume', 'revert', 'db', 'before', '--yes'], ['snapshot', 'delete', 'before', '--yes'], ['volume', 'extend', 'db', '2']]) {
      const r = await kindling('--agents', agents, ...args);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 7, stdout: '' });
      expect(r.stderr).toMatch(new RegExp(`^error: UNAVAILABLE: .*did not answer: ${b.url.replace(/[/.]/g, '\\$&')}`));
    }
    expect(parse(await kindling('--url', a.url, 'volume', 'show', onA.id, '--json'))).toMatchObject({ name: 'db', size: 1, snapshots: [{ name: 'before' }] });

    // A volume only the down agent holds is not "not found".
    for (const ref of ['only-b', onlyB.id]) {
      const r = await kindling('--agents', agents, 'volume', 'show', ref);
      expect({ ref, code: r.code, stdout: r.stdout }).toEqual({ ref, code: 7, stdout: '' });
      expect(r.stderr).toContain(b.url);
    }

    // An id is unique: found on an agent that answered, it is that volume.
    expect(parse(await kindling('--agents', agents, 'volume', 'extend', onA.id, '2', '--json'))).toMatchObject({ id: onA.id, size: 2 });
    // Pinned to the agent that answered, the name means its volume.
    expect((await kindling('--agents', agents, '--agent', a.url, 'snapshot', 'delete', 'before', '--yes')).code).toBe(0);
    expect(parse(await kindling('--agents', agents, '--agent', a.url, 'volume', 'delete', 'db', '--yes', '--json'))).toEqual({ kind: 'volume', id: onA.id, status: 'deleted' });
  });
});
