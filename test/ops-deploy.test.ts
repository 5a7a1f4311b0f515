import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN } from './support/agent-process.js';

const deploy = resolve(import.meta.dirname, '../deploy');
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

  it('the systemd unit passes systemd-analyze verify, pointed at the built bin', async () => {
    const unit = await readFile(join(deploy, 'systemd/kindling-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/kindling-agent --config \/etc\/kindling\/agent\.yaml/m);
    expect(unit).toMatch(/^KillMode=mixed$/m);
    expect(unit).toMatch(/^StateDirectory=kindling$/m);
    // The unit names the installed path; here the bin is the workspace's build.
    const dir = await mkdtemp(join(tmpdir(), 'kindling-unit-'));
    try {
      const file = join(dir, 'kindling-agent.service');
      await writeFile(file, unit.replace('/usr/bin/kindling-agent', `${process.execPath} ${AGENT_BIN}`));
      expect(run('systemd-analyze', ['verify', file])).toEqual({ code: 0, output: '' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
