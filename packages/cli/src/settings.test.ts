import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveSettings, type Environment } from './settings.js';

let dir: string;
let env: (vars?: NodeJS.ProcessEnv, cwd?: string) => Environment;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-settings-'));
  await mkdir(join(dir, 'home/.config/kindling'), { recursive: true });
  await writeFile(join(dir, 'home/.config/kindling/client.yaml'), 'url: ws://config-host:8600\ntoken: from-config\n');
  await mkdir(join(dir, 'host/var/kindling'), { recursive: true });
  await writeFile(join(dir, 'host/var/kindling/token'), 'local-token\n');
  env = (vars = {}, cwd = dir) => ({ env: vars, cwd, home: join(dir, 'nohome') });
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('takes flags over env over the client config', () => {
  const withConfig = (vars: NodeJS.ProcessEnv = {}): Environment => ({ env: vars, cwd: dir, home: join(dir, 'home') });
  expect(resolveSettings({}, withConfig())).toMatchObject({ urls: ['ws://config-host:8600'], token: 'from-config', fleet: false });
  expect(resolveSettings({}, withConfig({ KINDLING_URL: 'ws://env-host:8600', KINDLING_TOKEN: 'from-env' }))).toMatchObject({
    urls: ['ws://env-host:8600'],
    token: 'from-env',
  });
  expect(resolveSettings({ url: 'ws://flag-host:8600', token: 'from-flag' }, withConfig({ KINDLING_URL: 'ws://env-host:8600', KINDLING_TOKEN: 'x' }))).toMatchObject({
    urls: ['ws://flag-host:8600'],
    token: 'from-flag',
  });
  // An agent list given as a flag is a fleet, and overrides KINDLING_URL.
  expect(resolveSettings({ agents: 'ws://a:8600, ws://b:8600' }, withConfig({ KINDLING_URL: 'ws://env-host:8600' }))).toMatchObject({
    urls: ['ws://a:8600', 'ws://b:8600'],
    fleet: true,
  });
});

it("finds the local agent's token file for a loopback agent only", () => {
  const host = join(dir, 'host');
  expect(resolveSettings({}, env({}, host))).toMatchObject({ urls: ['ws://127.0.0.1:8600'], token: 'local-token' });
  expect(resolveSettings({ url: 'ws://localhost:9000' }, env({}, host))).toMatchObject({ token: 'local-token' });
  // This host's secret is never sent to another host.
  expect(resolveSettings({ url: 'wss://storage-2:8600' }, env({}, host))).toMatchObject({ token: undefined });
  expect(resolveSettings({}, env({}, dir))).toMatchObject({ token: undefined });
});

it('refuses contradictory or unreadable settings with a clear message', () => {
  expect(() => resolveSettings({ url: 'ws://a:1', agents: 'ws://b:1' }, env())).toThrow('give either --url or --agents/--agents-file, not both');
  expect(() => resolveSettings({ token: 't', tokenFile: 'f' }, env())).toThrow('give --token or --token-file, not both');
  expect(() => resolveSettings({ tokenFile: 'missing' }, env())).toThrow(`cannot read --token-file ${join(dir, 'missing')}: ENOENT`);
  expect(() => resolveSettings({ config: 'missing.yaml' }, env())).toThrow(`cannot read client config ${join(dir, 'missing.yaml')}: ENOENT`);
  expect(() => resolveSettings({ timeout: '-1' }, env())).toThrow('--timeout takes a positive number of seconds, not -1');
});
