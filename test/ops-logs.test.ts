import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { immutableUnavailable, whileImmutable } from './support/cinderlib.js';
import { requires } from '@kindling/agent/testing';
import { AGENT_BIN, startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { RawClient } from './support/raw-client.js';

// What an operator reads on the agent's stderr (JSON lines when it is not a terminal).
const TOKEN = 'logs-admin-token-0123456789';
const READ_TOKEN = 'logs-read-token-0123456789';
// A host without `chattr +i` fails this scenario, not skips it (unless skips are asked for).
const itFails = requires('this failure scenario (an immutable file, chattr +i)', immutableUnavailable(), it, it.skip);

let proc: AgentProcess;
beforeAll(async () => {
  proc = await startAgentProcess({ token: TOKEN, config: { readTokens: [READ_TOKEN] } });
});
afterAll(async () => {
  await proc?.dispose();
});

type Entry = Record<string, unknown> & { level: string; msg: string; time: string };
const entries = (): Entry[] =>
  proc
    .stderr()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Entry);

/** Stderr comes through its own pipe: a line written before a reply may be read after it. */
async function logged(match: (e: Entry) => boolean): Promise<Entry[]> {
  for (let i = 0; i < 200 && !entries().some(match); i++) await new Promise((r) => setTimeout(r, 25));
  return entries();
}

describe('agent logs', () => {
  itFails('log a storage command that really failed, with argv, exit code and stderr tail, and its request', async () => {
    const client = await RawClient.connect(proc.url, TOKEN);
    const created = await client.call('volume.create', { backend: 'nfs', size: 1, name: 'logged' });
    const volume = (created.ok ? created.result : null) as { id: string; location: { share: string; activeFile: string } };
    // Storage refuses for real: qemu-img cannot open an immutable file for writing.
    const reply = await whileImmutable(join(volume.location.share, volume.location.activeFile), () =>
      client.sendFrame({ id: 99, op: 'volume.extend', args: { id: volume.id, size: 2 }, requestId: 'ops-logs-extend-1' }),
    );
    client.close();
    expect(reply).toMatchObject({ ok: false, error: { code: 'BACKEND_ERROR' } });

    const command = (await logged((e) => e.requestId === 'ops-logs-extend-1')).find((e) => Array.isArray(e.command) && (e.command as string[]).includes('resize'));
    expect(command).toMatchObject({
      level: 'warn',
      requestId: 'ops-logs-extend-1',
      op: 'volume.extend',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      // The image as qemu's json: description of the descriptor the agent checked it through (issue 18).
      command: ['qemu-img', 'resize', '-q', expect.stringMatching(/^json:\{"driver":"qcow2"/), '2G'],
      exitCode: 1,
      stderrTail: expect.stringMatching(/Could not open/),
      msg: expect.stringMatching(/^qemu-img failed \(exit 1\)/),
    });
    const request = entries().find((e) => e.requestId === 'ops-logs-extend-1' && 'outcome' in e);
    expect(request).toMatchObject({
      level: 'warn',
      op: 'volume.extend',
      id: volume.id,
      outcome: 'BACKEND_ERROR',
      durationMs: expect.any(Number),
      session: expect.stringMatching(/^[0-9a-f]{8}$/),
    });
  });

  it('log and count refused credentials, and never log a token', async () => {
    const wrong = 'not-the-token-0123456789';
    expect((await fetch(`http://127.0.0.1:${proc.port}/metrics`, { headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    await expect(RawClient.connect(proc.url, 'another-bad-token-0123456789')).rejects.toThrow(/HTTP 401/);
    const reader = await RawClient.connect(proc.url, READ_TOKEN);
    expect(await reader.call('volume.create', { backend: 'nfs', size: 1 })).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    reader.close();

    const refusals = (await logged((e) => e.op === 'volume.create' && /^refused/.test(e.msg))).filter((e) => /^refused/.test(e.msg));
    expect(refusals.map((e) => [e.path ?? e.op, e.presented ?? e.role])).toEqual([
      ['/metrics', true],
      ['/rpc', true],
      ['volume.create', 'read'],
    ]);
    const metrics = await (await fetch(`http://127.0.0.1:${proc.port}/metrics`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).text();
    expect(metrics).toMatch(/^kindling_auth_refusals_total\{reason="bad_token"\} 2$/m);
    expect(metrics).toMatch(/^kindling_auth_refusals_total\{reason="read_only"\} 1$/m);
    for (const secret of [TOKEN, READ_TOKEN, wrong]) expect(proc.stderr()).not.toContain(secret);
  });
});

describe('failed commands', () => {
  it('logs a failed storage command once, whole: argv, exit code and stderr tail', () => {
    // The agent's own runner in a process of its own, so its stderr is the log to read.
    const runner = resolve(AGENT_BIN, '../exec/run.js');
    const script = `import { run } from ${JSON.stringify(runner)};
      await run(['sh', '-c', 'echo refused >&2; exit 3', 'sh', 'create', 'name=volume-1']).catch(() => {});`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const [line, ...more] = r.stderr.split('\n').filter(Boolean);
    expect(more).toEqual([]);
    expect(JSON.parse(line!)).toMatchObject({
      level: 'warn',
      command: ['sh', '-c', 'echo refused >&2; exit 3', 'sh', 'create', 'name=volume-1'],
      exitCode: 3,
      stderrTail: 'refused',
    });
  });

  /** Runs the agent's runner in a process of its own, as `body` says, and returns what it logged. */
  function runnerLog(body: string): Record<string, unknown>[] {
    const dist = resolve(AGENT_BIN, '..');
    const script = `import { run } from ${JSON.stringify(join(dist, 'exec/run.js'))};
      import { inRequest } from ${JSON.stringify(join(dist, 'request-context.js'))};
      import { log } from ${JSON.stringify(join(dist, 'log.js'))};
      ${body}`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    return r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  it('names the request and op a failed command ran for, so the documented requestId filter finds it', () => {
    const lines = runnerLog(`await inRequest({ op: 'volume.delete', requestId: 'ops-logs-req-7', queued: false }, () =>
      run(['sh', '-c', 'echo refused >&2; exit 3']).catch(() => {}));`);
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', requestId: 'ops-logs-req-7', op: 'volume.delete', exitCode: 3 })]);
  });

  it('logs an expected failure (a probe for what may be missing) at debug, not warn', () => {
    const probe = `run(['sh', '-c', 'echo Failed to find logical volume vg/clear-x >&2; exit 5'], { expected: (stderr) => stderr.includes('Failed to find') }).catch(() => {})`;
    expect(runnerLog(`await ${probe};`)).toEqual([]);
    expect(runnerLog(`log.level = 'debug'; await ${probe};`)).toEqual([expect.objectContaining({ level: 'debug', exitCode: 5 })]);
  });
});
