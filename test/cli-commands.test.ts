import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mask, runCli, type CliResult } from '../packages/cli/src/testing/run-cli.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { whileImmutable } from './support/cinderlib.js';

// The kindling CLI as a user runs it: the built bin against a real agent with an NFS backend on a folder.
const TOKEN = 'cli-test-token-0123456789';

let agent: AgentProcess;
let dir: string;
const kindling = (...args: string[]): Promise<CliResult> => runCli(args, { env: { KINDLING_URL: agent.url, KINDLING_TOKEN: TOKEN } });
const json = <T = Record<string, unknown>>(r: CliResult): T => {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
};

beforeAll(async () => {
  agent = await startAgentProcess({ token: TOKEN });
  dir = await mkdtemp(join(tmpdir(), 'kindling-cli-'));
});
afterAll(async () => {
  await agent?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Each step is a process start and a connection: on a loaded 2-core host a scenario takes a while.
const SCENARIO = { timeout: 120_000 };

describe('kindling against one agent', SCENARIO, () => {
  it('creates, lists and shows volumes as tables and as JSON', async () => {
    const created = json(await kindling('volume', 'create', '--size', '1', '--name', 'alpha', '--metadata', 'team=db', '--json'));
    expect(created).toMatchObject({
      kind: 'volume',
      schemaVersion: 1,
      name: 'alpha',
      size: 1,
      status: 'available',
      backend: 'nfs',
      metadata: { team: 'db' },
      snapshots: [],
      connections: [],
      agent: { url: agent.url, hostId: agent.hostId },
    });
    json(await kindling('volume', 'create', '--size', '2', '--name', 'beta', '--backend', 'nfs', '-o', 'json'));

    const list = await kindling('volume', 'list');
    expect(list.code).toBe(0);
    expect(mask(list.stdout)).toMatchInlineSnapshot(`
      "ID                                     NAME    SIZE   STATUS      BACKEND   SNAPSHOTS   ATTACHED   CREATED
      id-1................................   alpha   1G     available   nfs       0           0          YYYY-MM-DDTHH:MM:SS.mmmZ
      id-2................................   beta    2G     available   nfs       0           0          YYYY-MM-DDTHH:MM:SS.mmmZ
      "
    `);

    const show = await kindling('volume', 'show', 'alpha');
    expect(show.code).toBe(0);
    expect(mask(show.stdout)).toMatchInlineSnapshot(`
      "ID:                id-1................................
      Name:              alpha
      Description:       -
      Size:              1 GiB
      Status:            available
      Backend:           nfs
      Agent:             ws://127.0.0.1:PPPPP/rpc
      Metadata:          team=db
      Source volume:     -
      Source snapshot:   -
      Created:           YYYY-MM-DDTHH:MM:SS.mmmZ
      Updated:           YYYY-MM-DDTHH:MM:SS.mmmZ
      Snapshots:         -
      Connections:       -
      "
    `);

    // JSON lines come as the agent's pages do (its order, not creation's).
    const lines = (await kindling('volume', 'list', '-o', 'jsonl')).stdout.trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { name: string }).name).sort()).toEqual(['alpha', 'beta']);
  });

  it('takes and lists snapshots, and refuses to delete a volume that has one (exit 4)', async () => {
    json(await kindling('volume', 'create', '--size', '1', '--name', 'gamma', '--json'));
    const snap = json<{ id: string; volumeId: string; status: string }>(await kindling('snapshot', 'create', 'gamma', '--name', 'before', '--json'));
    expect(snap.status).toBe('available');

    const list = await kindling('snapshot', 'list', '--volume', 'gamma');
    expect(mask(list.stdout)).toMatchInlineSnapshot(`
      "ID                                     NAME     VOLUME                                 SIZE   STATUS      BACKEND   CREATED
      id-1................................   before   id-2................................   1G     available   nfs       YYYY-MM-DDTHH:MM:SS.mmmZ
      "
    `);

    const refused = await kindling('volume', 'delete', 'gamma', '--yes');
    expect(refused.code).toBe(4);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^error: CONFLICT: .*snapshot.*\n$/);
    expect(json(await kindling('volume', 'show', 'gamma', '--json'))).toMatchObject({ status: 'available' });

    expect(json(await kindling('volume', 'revert', 'gamma', 'before', '--yes', '--json'))).toMatchObject({ status: 'available' });
    const restored = json<{ id: string }>(await kindling('volume', 'create', '--snapshot', 'before', '--name', 'restored', '--json'));
    expect(restored).toMatchObject({ name: 'restored', size: 1, status: 'available', snapshotId: snap.id });
    expect(json(await kindling('volume', 'delete', restored.id, '--no-wait', '--yes', '--json'))).toEqual({ kind: 'volume', id: restored.id, status: expect.stringMatching(/^delet(ing|ed)$/) });
    expect(json(await kindling('snapshot', 'delete', snap.id, '--yes', '--json'))).toEqual({ kind: 'snapshot', id: snap.id, status: 'deleted' });
    const deleted = await kindling('volume', 'delete', 'gamma', '--yes');
    expect(deleted).toMatchObject({ code: 0, stderr: '' });
    expect(deleted.stdout).toMatch(/^volume [0-9a-f-]{36} deleted\n$/);
    expect((await kindling('volume', 'show', 'gamma')).code).toBe(3);
  });

  it('clones with --wait to an available copy, and with --no-wait returns once the copy began', async () => {
    const source = json<{ id: string }>(await kindling('volume', 'create', '--size', '1', '--name', 'src', '--json'));
    const copy = json(await kindling('volume', 'clone', 'src', '--name', 'copy', '--wait', '--json'));
    expect(copy).toMatchObject({ name: 'copy', status: 'available', sourceVolId: source.id, size: 1 });

    const begun = json<{ id: string; status: string; sourceVolId: string }>(await kindling('volume', 'clone', 'src', '--name', 'later', '--no-wait', '--json'));
    expect(['creating', 'available']).toContain(begun.status);
    expect(begun.sourceVolId).toBe(source.id);
    // The agent finishes the copy after the CLI left: it ends available.
    let status = begun.status;
    for (let i = 0; i < 100 && status === 'creating'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = json<{ status: string }>(await kindling('volume', 'show', begun.id, '--json')).status;
    }
    expect(status).toBe('available');
  });

  it('extends, attaches and detaches', async () => {
    json(await kindling('volume', 'create', '--size', '1', '--name', 'grow', '--json'));
    expect(json(await kindling('volume', 'extend', 'grow', '3', '--json'))).toMatchObject({ size: 3 });
    const conn = json<{ kind: string; attached: boolean; path: string }>(await kindling('volume', 'attach', 'grow', '--json'));
    expect(conn).toMatchObject({ kind: 'connection', attached: true });
    expect(conn.path).toContain(agent.dir);
    expect(json(await kindling('volume', 'show', 'grow', '--json'))).toMatchObject({ status: 'in-use', connections: [{ attached: true }] });
    expect((await kindling('volume', 'detach', 'grow')).code).toBe(0);
    expect(json(await kindling('volume', 'show', 'grow', '--json'))).toMatchObject({ status: 'available', connections: [] });

    const connectorFile = join(dir, 'connector.json');
    await writeFile(connectorFile, JSON.stringify({ host: 'compute-1' }));
    const exported = json<{ id: string; connectorInfo: unknown }>(await kindling('volume', 'connect', 'grow', '--connector', `@${connectorFile}`, '--json'));
    expect(exported).toMatchObject({ kind: 'connection', attached: false, connectorInfo: { host: 'compute-1' } });
    expect(json(await kindling('volume', 'disconnect', 'grow', '--json'))).toEqual({ kind: 'connection', id: exported.id, volumeId: expect.any(String), status: 'deleted' });
    expect(json(await kindling('volume', 'show', 'grow', '--json'))).toMatchObject({ connections: [] });
  });

  it('shows backends, their stats and capabilities, health and the key-value store', async () => {
    expect((await kindling('backend', 'list')).stdout).toMatchInlineSnapshot(`
      "NAME   DRIVER
      nfs    nfs
      "
    `);
    const stats = json<Record<string, unknown>[]>(await kindling('backend', 'stats', '--json'));
    expect(stats).toEqual([expect.objectContaining({ backendName: 'nfs', driver: 'nfs', totalCapacityGb: expect.any(Number), agent: { url: agent.url, hostId: agent.hostId } })]);
    // The table says what fits, in the agent's own rule: never a size a create then refuses.
    const [header, row] = (await kindling('backend', 'stats')).stdout.trimEnd().split('\n').map((l) => l.trim().split(/\s+/));
    expect(row![header!.indexOf('FITS')]).toBe(`${stats[0]!['maxVolumeSizeGb'] as number}G`);
    expect((await kindling('backend', 'capabilities', 'nfs')).stdout).toMatchInlineSnapshot(`
      "snapshot:                   yes
      snapshotInUse:              no
      clone:                      yes
      createFromSnapshot:         yes
      revertToSnapshot:           yes
      extend:                     yes
      extendWithSnapshots:        yes
      extendInUseWithSnapshots:   yes
      attach:                     yes
      connect:                    yes
      thin:                       yes
      protocols:                  nfs
      "
    `);
    const health = await kindling('health');
    expect(health.code).toBe(0);
    expect(mask(health.stdout)).toMatchInlineSnapshot(`
      "AGENT                      HOST                                   LINK   READY   BACKENDS    PROBLEM
      ws://127.0.0.1:PPPPP/rpc   id-1................................   up     yes     nfs:ready   -
      "
    `);

    expect((await kindling('kv', 'set', 'node-1', 'connector')).code).toBe(0);
    expect(await kindling('kv', 'get', 'node-1')).toEqual({ code: 0, stdout: 'connector\n', stderr: '' });
    expect(json(await kindling('kv', 'get', 'node-1', '--json'))).toEqual({ key: 'node-1', value: 'connector' });
    expect((await kindling('kv', 'delete', 'node-1')).code).toBe(0);
    expect(await kindling('kv', 'get', 'node-1')).toEqual({ code: 3, stdout: '', stderr: 'error: NOT_FOUND: key node-1 is not set\n' });
  });

  it('gives a stable exit code and one line on stderr per kind of failure', async () => {
    const cases: [args: string[], code: number, line: RegExp][] = [
      [['volume', 'show', 'no-such-volume'], 3, /^error: NOT_FOUND: volume no-such-volume not found$/],
      [['volume', 'create', '--size', 'big'], 2, /^error: INVALID_ARGUMENT: size is a whole number of GiB/],
      [['volume', 'create', '--size', '1', '--backend', 'lvm'], 3, /^error: NOT_FOUND: backend lvm not found$/],
      [['volume', 'list', '--bogus'], 2, /^error: unknown option '--bogus'$/],
      [['volume', 'lsit'], 2, /^error: unknown command 'lsit'/],
      [['-o', 'yaml', 'volume', 'list'], 2, /^error: option '-o, --output <format>' argument 'yaml' is invalid/],
      [['--token', 'not-the-token-0123456789', 'volume', 'list'], 6, /^error: UNAUTHORIZED: /],
      [['--url', 'ws://127.0.0.1:1', 'volume', 'list'], 7, /^error: UNAVAILABLE: cannot reach the agent at ws:\/\/127\.0\.0\.1:1/],
    ];
    for (const [args, code, line] of cases) {
      const r = await kindling(...args);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code, stdout: '' });
      const [first, ...more] = r.stderr.trimEnd().split('\n');
      expect(first).toMatch(line);
      // One line; commander may add its "(Did you mean ...?)" to a typo.
      expect(more.filter((l) => !l.startsWith('(Did you mean'))).toEqual([]);
    }
  });

  it('shows the failed storage command with --debug on a BACKEND_ERROR (exit 5)', async () => {
    // Storage refuses for real: an immutable volume file cannot be opened for writing by qemu-img.
    const immutableVolume = async (name: string) => {
      const vol = json<{ location: { share: string; activeFile: string } }>(await kindling('volume', 'create', '--size', '1', '--name', name, '--json'));
      return join(vol.location.share, vol.location.activeFile);
    };
    const plain = await whileImmutable(await immutableVolume('broken'), () => kindling('volume', 'extend', 'broken', '2'));
    expect(plain.code).toBe(5);
    expect(plain.stderr).toMatch(/^error: BACKEND_ERROR: qemu-img failed[^\n]*\n$/);

    const detailed = await whileImmutable(await immutableVolume('broken-too'), () =>
      kindling('--debug', 'volume', 'extend', 'broken-too', '2'),
    );
    expect(detailed.code).toBe(5);
    const [first, ...rest] = detailed.stderr.trimEnd().split('\n');
    expect(first).toMatch(/^error: BACKEND_ERROR: /);
    // The driver hands qemu-img the file it opened (a descriptor, never the name again): details name the volume.
    expect(rest.join('\n')).toMatch(/^command: qemu-img resize .* 2G\nexit code: 1\nstderr:\n  qemu-img: Could not open .*\ndetails: \{"volumeId":"[0-9a-f-]{36}"\}$/);
  });
});

describe('connection settings', SCENARIO, () => {
  const list = (env: Record<string, string>, args: string[] = [], cwd?: string) => runCli([...args, 'backend', 'list', '--json'], { env, cwd });

  it('reads the token from --token-file, KINDLING_TOKEN_FILE, a client config, or the local agent\'s token file', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, TOKEN + '\n', { mode: 0o600 });
    expect((await list({ KINDLING_URL: agent.url }, ['--token-file', tokenFile])).code).toBe(0);
    expect((await list({ KINDLING_URL: agent.url, KINDLING_TOKEN_FILE: tokenFile })).code).toBe(0);

    const config = join(dir, 'client.yaml');
    await writeFile(config, `url: ${agent.url}\ntokenFile: ${tokenFile}\n`);
    expect((await list({ KINDLING_CONFIG: config })).code).toBe(0);
    // The default place, ~/.config/kindling/client.yaml.
    await mkdir(join(dir, 'home/.config/kindling'), { recursive: true });
    await writeFile(join(dir, 'home/.config/kindling/client.yaml'), `url: ${agent.url}\ntoken: ${TOKEN}\n`);
    expect((await runCli(['backend', 'list'], { home: join(dir, 'home') })).code).toBe(0);

    // On the agent's host: the quick start's ./var/kindling/token, found by itself for a loopback agent.
    const host = join(dir, 'host');
    await mkdir(join(host, 'var/kindling'), { recursive: true });
    await writeFile(join(host, 'var/kindling/token'), TOKEN);
    expect((await list({ KINDLING_URL: agent.url }, [], host)).code).toBe(0);
    expect((await list({ KINDLING_URL: agent.url }, [], dir)).code).toBe(6);
  });

  it('names unknown keys of a client config (exit 2)', async () => {
    const config = join(dir, 'bad.yaml');
    await writeFile(config, `url: ${agent.url}\ntokn: x\n`);
    const r = await list({}, ['--config', config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`error: INVALID_ARGUMENT: the client config ${config} has unknown keys: tokn (known: url, agents, token, tokenFile, ca, cert, key)\n`);
  });
});
