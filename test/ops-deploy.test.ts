import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN, startAgentProcess } from './support/agent-process.js';

const root = resolve(import.meta.dirname, '..');
const deploy = join(root, 'deploy');
const BINS = { agent: 'kindling-agent', cli: 'kindling', csi: 'kindling-csi' } as const;
const run = (command: string, args: string[]) => {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() };
};

describe('deploy files', () => {
  it('the alert rules load in Prometheus (promtool check rules)', () => {
    const checked = run('promtool', ['check', 'rules', join(deploy, 'prometheus/kindling-alerts.yaml')]);
    expect(checked).toMatchObject({ code: 0, output: expect.stringMatching(/SUCCESS: \d+ rules found/) });
  });

  it('the systemd unit passes systemd-analyze verify, pointed at the bin linked as docs/operations.md installs it', async () => {
    const unit = await readFile(join(deploy, 'systemd/kindling-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/kindling-agent --config \/etc\/kindling\/agent\.yaml --token-file /m);
    expect(unit).toMatch(/^KillMode=mixed$/m);
    expect(unit).toMatch(/^StateDirectory=kindling$/m);
    const docs = await readFile(join(root, 'docs/operations.md'), 'utf8');
    expect(docs).toContain('ln -s "$PWD/packages/agent/dist/bin.js" /usr/bin/kindling-agent');
    // check-config is documented with the flags the unit runs with, so it checks what will run.
    const check = 'kindling-agent check-config --config /etc/kindling/agent.yaml --token-file /etc/kindling/token';
    expect(docs).toContain(check);
    expect(unit).toContain(check);
    // The unit names the installed path; here the same link points at the workspace's build.
    const dir = await mkdtemp(join(tmpdir(), 'kindling-unit-'));
    try {
      const link = join(dir, 'kindling-agent');
      await symlink(AGENT_BIN, link);
      const file = join(dir, 'kindling-agent.service');
      await writeFile(file, unit.replace('/usr/bin/kindling-agent', link));
      expect(run('systemd-analyze', ['verify', file])).toEqual({ code: 0, output: '' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the built bins', () => {
  it.each(Object.entries(BINS))('%s: dist/bin.js is mode 0755 and runs through a symlink', async (pkg, name) => {
    const bin = join(root, 'packages', pkg, 'dist/bin.js');
    expect(((await stat(bin)).mode & 0o777).toString(8)).toBe('755');
    const dir = await mkdtemp(join(tmpdir(), 'kindling-bin-'));
    try {
      await symlink(bin, join(dir, name));
      const answer = run(join(dir, name), ['--help']);
      expect(answer.code).toBe(0);
      expect(answer.output).toMatch(new RegExp(`^usage: ${name}\\b`, 'im'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the listening line', () => {
  it('on 0.0.0.0 names addresses a client can use, not the wildcard', async () => {
    const agent = await startAgentProcess({ host: '0.0.0.0' });
    try {
      expect(agent).toMatchObject({ url: `ws://127.0.0.1:${agent.port}/rpc`, urls: expect.arrayContaining([`ws://127.0.0.1:${agent.port}/rpc`]) });
      expect(agent).toMatchObject({ urls: expect.not.arrayContaining([expect.stringContaining('0.0.0.0')]) });
    } finally {
      await agent.dispose();
    }
  });
});
