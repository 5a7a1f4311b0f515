import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult, type RunOptions } from '../packages/cli/src/testing/run-cli.js';
import { StandInAgent } from '../packages/sdk/src/testing/stand-in-agent.js';

// The kindling CLI when the link, a share or the reader of its output fails: stand-in agents inject the fault.
const TOKEN = 'cli-faults-token-0123456789';

let standIn: StandInAgent;
let dir: string;
const kindling = (args: string[], options: RunOptions = {}): Promise<CliResult> =>
  runCli(args, { killAfterMs: 60_000, ...options, env: { KINDLING_URL: standIn.url, KINDLING_TOKEN: TOKEN, ...options.env } });

/** A promise and its resolver, to hold a stand-in's reply until the test says. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** A clone the stand-in starts and finishes only when the test opens `finish`; `started` opens when the work began. */
function slowClone(agent: StandInAgent): { started: Promise<void>; finish(): void } {
  const started = gate();
  const finish = gate();
  agent.handle('volume.clone', async (a) => {
    started.open();
    await finish.promise;
    const source = agent.volumes.get(String(a.id))!;
    return agent.newVolume({ backend: source.backend, size: source.size, sourceVolId: source.id, name: (a.name as string | undefined) ?? null });
  });
  return { started: started.promise, finish: finish.open };
}

const cloneRequestIds = (agent: StandInAgent) => [...new Set(agent.requests.filter((r) => r.op === 'volume.clone').map((r) => r.requestId))];

const OTHER_TOKEN = 'other-agent-token-0123456789';

/** `standIn` as host-a and a second stand-in as host-b with a token of its own (GiB each), stopped after `fn`. */
async function twoHosts([a, b]: [number, number], fn: (other: StandInAgent) => Promise<void>): Promise<void> {
  standIn = await StandInAgent.start({ token: TOKEN, hostId: 'host-a', capacityGb: a });
  const other = await StandInAgent.start({ token: OTHER_TOKEN, hostId: 'host-b', capacityGb: b });
  try {
    await fn(other);
  } finally {
    await other.stop();
  }
}

/** `volume create --name placed` without --backend over the agents of a client config: exit 0, quiet; its JSON. */
async function createPlaced(config: string): Promise<unknown> {
  const r = await runCli(['volume', 'create', '--size', '1', '--name', 'placed', '--json'], { env: { KINDLING_CONFIG: config }, killAfterMs: 60_000 });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-cli-faults-'));
});
afterEach(async () => {
  await standIn?.stop();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kindling when the link drops', { timeout: 90_000 }, () => {
  it('resends a clone across a 100 ms link drop with its request id: exit 0, one copy; a rerun with --request-id gets the same copy', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    const source = standIn.newVolume({ backend: 'lvm', size: 1, name: 'src' });
    const clone = slowClone(standIn);
    const run = kindling(['volume', 'clone', 'src', '--name', 'copy', '--json']);
    await clone.started;
    // The link goes for 100 ms; the copy finishes while it is down.
    await standIn.stop();
    clone.finish();
    await new Promise((r) => setTimeout(r, 100));
    await standIn.listen();
    const r = await run;
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const copy = JSON.parse(r.stdout) as { id: string; name: string; sourceVolId: string };
    expect(copy).toMatchObject({ name: 'copy', sourceVolId: source.id });
    const [requestId, ...others] = cloneRequestIds(standIn);
    expect(others).toEqual([]);
    expect(standIn.executions(requestId!)).toBe(1);
    expect([...standIn.volumes.values()].map((v) => v.name).sort()).toEqual(['copy', 'src']);

    const again = await kindling(['volume', 'clone', 'src', '--name', 'copy', '--request-id', requestId!, '--json']);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect((JSON.parse(again.stdout) as { id: string }).id).toBe(copy.id);
    expect(standIn.executions(requestId!)).toBe(1);
    expect(standIn.volumes.size).toBe(2);
  });

  it('prints the request id of a copy whose outcome it could not learn, and a rerun with it adopts that copy', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    standIn.newVolume({ backend: 'lvm', size: 1, name: 'src' });
    const clone = slowClone(standIn);
    const run = kindling(['--timeout', '2', 'volume', 'clone', 'src', '--name', 'copy']);
    await clone.started;
    await standIn.stop();
    const failed = await run;
    expect(failed.code).toBe(7);
    const [requestId] = cloneRequestIds(standIn);
    expect(failed.stderr).toContain(`request id: ${requestId!}`);
    expect(failed.stderr).toContain(`--request-id ${requestId!}`);

    clone.finish();
    await standIn.listen();
    const adopted = await kindling(['volume', 'clone', 'src', '--name', 'copy', '--request-id', requestId!, '--json']);
    expect({ code: adopted.code, stderr: adopted.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(adopted.stdout)).toMatchObject({ name: 'copy', status: 'available' });
    expect(standIn.executions(requestId!)).toBe(1);
    expect(standIn.volumes.size).toBe(2);
  });

  it('names the agent and backend of a placed create whose outcome it could not learn, for the rerun to adopt it', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    const reply = gate();
    const made = gate();
    standIn.handle('volume.create', async (a) => {
      made.open();
      await reply.promise;
      return standIn.newVolume(a as { backend: string; size: number; name: string });
    });
    const run = kindling(['--timeout', '2', 'volume', 'create', '--size', '1', '--name', 'placed']);
    await made.promise;
    await standIn.stop();
    const failed = await run;
    expect(failed.code).toBe(7);
    const [requestId] = [...new Set(standIn.requests.filter((r) => r.op === 'volume.create').map((r) => r.requestId))];
    expect(failed.stderr).toContain(`--url ${standIn.url} --backend lvm --request-id ${requestId!}`);

    reply.open();
    await standIn.listen();
    const adopted = await kindling(['volume', 'create', '--size', '1', '--name', 'placed', '--backend', 'lvm', '--request-id', requestId!, '--json']);
    expect({ code: adopted.code, stderr: adopted.stderr }).toEqual({ code: 0, stderr: '' });
    expect(standIn.executions(requestId!)).toBe(1);
    expect(standIn.volumes.size).toBe(1);
  });

  it('prints the request id of a change it cannot resend (kv set) without offering a --request-id it does not take', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    const reached = gate();
    standIn.handle('kv.set', () => {
      reached.open();
      return new Promise(() => undefined);
    });
    const run = kindling(['--timeout', '2', 'kv', 'set', 'node-1', 'connector']);
    await reached.promise;
    await standIn.stop();
    const failed = await run;
    expect(failed.code).toBe(7);
    const [requestId] = standIn.requests.filter((r) => r.op === 'kv.set').map((r) => r.requestId);
    expect(failed.stderr).toContain(`request id: ${requestId!} (its outcome is unknown: look before running it again)\n`);
    expect(failed.stderr).not.toContain('--request-id');
  });
});

describe('kindling with a sick share, a closed pipe, secrets and per-agent tokens', { timeout: 90_000 }, () => {
  it('lists volumes while a backend never answers its stats: no command waits for stats it does not need', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    standIn.newVolume({ backend: 'lvm', size: 1, name: 'one' });
    standIn.handle('backend.stats', () => new Promise(() => undefined));
    const r = await kindling(['volume', 'list', '-o', 'jsonl']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect((JSON.parse(r.stdout) as { name: string }).name).toBe('one');
    // health reports on it (the stand-in serves no /readyz: not ready, exit 7) instead of hanging.
    const health = await kindling(['health', '--json']);
    expect(health.code).toBe(7);
    expect(JSON.parse(health.stdout)).toMatchObject([{ link: 'up', ready: false }]);
  });

  it('exits 0 quietly when the reader of its output goes away (kindling volume list | head)', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    for (let i = 0; i < 50; i++) standIn.newVolume({ backend: 'lvm', size: 1, name: `v${i}` });
    const r = await kindling(['volume', 'list'], { closeStdout: true });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('leaves CHAP secrets out of JSON and JSON lines unless --show-secrets', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    const volume = standIn.newVolume({ backend: 'lvm', size: 1, name: 'exported', status: 'in-use' });
    const data = { target_iqn: 'iqn.2026-12.test:v', auth_method: 'CHAP', auth_username: 'chap-user', auth_password: 'chap-secret-pw' };
    standIn.connections.set('c0ffee00-0000-4000-8000-000000000001', {
      id: 'c0ffee00-0000-4000-8000-000000000001',
      backend: 'lvm',
      volumeId: volume.id,
      connectorInfo: { host: 'compute-1' },
      connectionInfo: { driverVolumeType: 'iscsi', data },
      path: null,
      attached: false,
      createdAt: new Date().toISOString(),
    });
    for (const args of [['volume', 'show', 'exported', '--json'], ['volume', 'list', '-o', 'jsonl'], ['volume', 'show', 'exported']]) {
      const r = await kindling(args);
      expect({ args, code: r.code }).toEqual({ args, code: 0 });
      expect(r.stdout).not.toContain('chap-secret-pw');
      expect(r.stdout).not.toContain('chap-user');
    }
    const shown = await kindling(['volume', 'show', 'exported', '--json', '--show-secrets']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ connections: [{ connectionInfo: { data } }] });
    // The rest of the connection info is still there.
    const hidden = JSON.parse((await kindling(['volume', 'show', 'exported', '--json'])).stdout) as { connections: { connectionInfo: { data: unknown } }[] };
    expect(hidden.connections[0]!.connectionInfo.data).toEqual({ target_iqn: 'iqn.2026-12.test:v', auth_method: 'CHAP' });
  });

  it('sends each agent of a fleet its own token from the client config, and places a new volume on the one with most room', async () => {
    await twoHosts([100, 200], async (other) => {
      standIn.newVolume({ backend: 'lvm', size: 1, name: 'on-a' });
      other.newVolume({ backend: 'lvm', size: 1, name: 'on-b' });
      const tokenFile = join(dir, 'b-token');
      await writeFile(tokenFile, `${OTHER_TOKEN}\n`, { mode: 0o600 });
      const config = join(dir, 'fleet.yaml');
      await writeFile(config, `agents:\n  - url: ${standIn.url}\n    token: ${TOKEN}\n  - url: ${other.url}\n    tokenFile: ${tokenFile}\n`);
      const r = await runCli(['volume', 'list', '-o', 'jsonl'], { env: { KINDLING_CONFIG: config }, killAfterMs: 60_000 });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { name: string }).name).sort()).toEqual(['on-a', 'on-b']);
      expect(await createPlaced(config)).toMatchObject({ name: 'placed', agent: { url: other.url, hostId: 'host-b' } });
      expect([...other.volumes.values()].map((v) => v.name).sort()).toEqual(['on-b', 'placed']);
    });
  });

  it('places over agents with tokens of their own by the SDK\'s one rule: equal room goes to the fewer volumes', async () => {
    // Both have 100 GiB free; the first agent listed holds two volumes, the second one.
    await twoHosts([102, 101], async (other) => {
      standIn.newVolume({ backend: 'lvm', size: 1, name: 'a-1' });
      standIn.newVolume({ backend: 'lvm', size: 1, name: 'a-2' });
      other.newVolume({ backend: 'lvm', size: 1, name: 'b-1' });
      const config = join(dir, 'tie.yaml');
      await writeFile(config, `agents:\n  - url: ${standIn.url}\n    token: ${TOKEN}\n  - url: ${other.url}\n    token: ${OTHER_TOKEN}\n`);
      expect(await createPlaced(config)).toMatchObject({ name: 'placed', agent: { url: other.url, hostId: 'host-b' } });
      expect([...other.volumes.values()].map((v) => v.name).sort()).toEqual(['b-1', 'placed']);
    });
  });

  it('says no token was given, not that the token was refused', async () => {
    standIn = await StandInAgent.start({ token: TOKEN });
    const r = await runCli(['--url', standIn.url, 'backend', 'list'], { killAfterMs: 60_000 });
    expect(r.code).toBe(6);
    expect(r.stderr).toBe('error: UNAUTHORIZED: no token: set KINDLING_TOKEN or --token-file\n');
  });
});
