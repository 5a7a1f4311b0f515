import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BIN, startAgentProcess, type AgentProcess } from './support/agent-process.js';

// A running agent holds a port and an index for the failures that need one taken.
let proc: AgentProcess;
let dir: string;
beforeAll(async () => {
  proc = await startAgentProcess();
  dir = await mkdtemp(join(tmpdir(), 'kindling-startup-'));
});
afterAll(async () => {
  await proc?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const nfs = () => ({ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], createShares: true });

/** Writes a config file in the test folder and returns its path. */
async function configFile(name: string, config: Record<string, unknown>): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, dataDir: join(dir, `${name}.data`), backends: [nfs()], ...config }));
  return file;
}

function runAgent(args: string[]) {
  const r = spawnSync(process.execPath, [AGENT_BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, lines: r.stderr.split('\n').filter(Boolean) };
}

type Case = [name: string, args: () => Promise<string[]>, code: number, line: RegExp];

const cases: Case[] = [
  ['an unknown flag', async () => ['--bogus'], 64, /^Unknown option '--bogus' \(see kindling-agent --help\)$/],
  ['an unknown command', async () => ['serv'], 64, /^unknown command serv \(see kindling-agent --help\)$/],
  ['a bad --log-level', async () => ['--log-level', 'loud'], 64, /^--log-level must be one of trace, debug, info/],
  ['a missing config file', async () => ['--config', join(dir, 'missing.yaml')], 78, /^cannot read config file .*missing\.yaml: ENOENT/],
  [
    'an unknown config key',
    async () => ['--config', await configFile('typo.json', { backends: [{ name: 'nfs', driver: 'nfs', sahres: [join(dir, 'share')] }] })],
    78,
    /^invalid config: backends\.0\.sahres: unknown key, did you mean shares\?$/,
  ],
  [
    'a missing share (createShares is off by default)',
    async () => ['--config', await configFile('share.json', { backends: [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'tpyo')] }] })],
    78,
    /^backend nfs: share .*tpyo does not exist \(set createShares: true to have it created\)$/,
  ],
  [
    'a missing TLS file',
    async () => ['--config', await configFile('tls.json', { tls: { cert: join(dir, 'none.pem'), key: join(dir, 'none.key') } })],
    78,
    /^cannot read tls\.cert .*none\.pem: ENOENT/,
  ],
  ['a missing token file', async () => ['--config', await configFile('token.json', {}), '--token-file', join(dir, 'no-token')], 78, /^cannot read token file/],
  ['a port in use', async () => ['--config', await configFile('port.json', { listen: { host: '127.0.0.1', port: proc.port } })], 69, /^cannot listen on 127\.0\.0\.1:\d+: the port is in use/],
  ['an index held by a running agent', async () => ['--config', join(proc.dir, 'agent.json'), '--port', '0'], 2, /^cannot open the index under .*: .*locked by another process/],
];

describe('kindling-agent start-up failures', () => {
  it.each(cases)('%s: one line and its exit code', async (_name, args, code, line) => {
    const run = runAgent(await args());
    expect(run.code).toBe(code);
    expect(run.lines).toHaveLength(1);
    const entry = JSON.parse(run.lines[0]!) as { level: string; msg: string; time: string };
    expect(entry).toMatchObject({ level: 'fatal', msg: expect.stringMatching(line) });
    // The failure is all there is: no listening line, no stack.
    expect(run.stdout).toBe('');
  });

  it('prints --version and --help on stdout and exits 0', async () => {
    const { version } = JSON.parse(await readFile(join(AGENT_BIN, '../../package.json'), 'utf8')) as { version: string };
    expect(runAgent(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, lines: [] });
    const help = runAgent(['--help']);
    expect(help).toMatchObject({ code: 0, lines: [] });
    expect(help.stdout).toMatch(/^usage: kindling-agent \[serve\|reindex\|check-config\]/);
    expect(help.stdout).toMatch(/--token-file F/);
  });
});

describe('kindling-agent check-config', () => {
  it('checks the host without serving: a missing volume group fails, a writable share passes', async () => {
    await mkdir(join(dir, 'check-share'));
    const file = await configFile('check.json', {
      backends: [
        { name: 'nfs', driver: 'nfs', shares: [join(dir, 'check-share'), join(dir, 'check-new')], createShares: true },
        { name: 'lvm', driver: 'lvm', volumeGroup: 'kindling-check-no-such-vg', volumeClear: 'none' },
      ],
    });
    const run = runAgent(['check-config', '--config', file]);
    expect(run.code).toBe(1);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ok {4}tool sh installed$/),
        expect.stringMatching(/^ok {4}tool grep installed$/),
        expect.stringMatching(/^ok {4}tool qemu-img installed$/),
        expect.stringMatching(/^ok {4}backend nfs: share .*check-share is writable$/),
        expect.stringMatching(/^ok {4}backend nfs: share .*check-new will be created \(createShares\)$/),
        expect.stringMatching(/^FAIL {2}backend lvm: volume group kindling-check-no-such-vg: Volume group "kindling-check-no-such-vg" not found; /),
      ]),
    );
    expect(lines.filter((l) => l.startsWith('FAIL'))).toHaveLength(1);

    const fine = runAgent(['check-config', '--config', await configFile('check-nfs.json', {})]);
    expect(fine).toMatchObject({ code: 0, lines: [] });
    expect(fine.stdout).not.toMatch(/FAIL/);
  });

  it('reports every missing share once, as FAIL, when createShares is off', async () => {
    const shares = [join(dir, 'gone-1'), join(dir, 'gone-2')];
    const run = runAgent(['check-config', '--config', await configFile('check-off.json', { backends: [{ name: 'nfs', driver: 'nfs', shares }] })]);
    expect(run.code).toBe(1);
    const about = (share: string) => run.stdout.split('\n').filter((l) => l.includes(share));
    for (const share of shares) {
      expect(about(share)).toEqual([`FAIL  backend nfs: share ${share} does not exist (set createShares: true to have it created)`]);
    }
  });

  it('lists config errors as FAIL items beside the host checks it can still run, and exits 78', async () => {
    const file = await configFile('check-bad.json', {
      backends: [
        { name: 'nfs', driver: 'nfs', sahres: [join(dir, 'share')] },
        { name: 'lvm', driver: 'lvm' },
      ],
    });
    const run = runAgent(['check-config', '--config', file, '--token-file', join(dir, 'no-token')]);
    expect(run).toMatchObject({ code: 78, lines: [] });
    const lines = run.stdout.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'FAIL  config: backends.0.sahres: unknown key, did you mean shares?',
        'FAIL  config: backends.1.volumeGroup: required',
        expect.stringMatching(/^FAIL {2}cannot read token file .*no-token: ENOENT/),
        'ok    tool sh installed',
        'ok    tool lvm installed',
        'ok    tool qemu-img installed',
      ]),
    );
  });

  // This host has no device-mapper (README: the host lane's kernel lacks it; the kernel lane has it).
  it('says the host has no device-mapper and what to set, failing an LVM backend that zeroes on delete', async () => {
    const lvm = (name: string, volumeClear: string) => ({ name, driver: 'lvm', volumeGroup: 'kindling-check-no-such-vg', volumeClear });
    const file = await configFile('check-dm.json', { backends: [lvm('zeroing', 'zero'), lvm('plain', 'none')] });
    const lines = runAgent(['check-config', '--config', file]).stdout.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ok {4}warning: no device-mapper on this host \(.+\): LVM snapshots, clones and attach are refused; see "Hosts without device-mapper" in docs\/operations\.md$/),
        'FAIL  backend zeroing: volumeClear: zero cannot zero a deleted volume without device-mapper; set volumeClear: none',
      ]),
    );
    expect(lines.filter((l) => l.includes('backend plain: volumeClear'))).toEqual([]);
  });
});
