import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { resolveSettings, type Environment, type Settings } from './settings.js';

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
  expect(resolveSettings({}, withConfig())).toMatchObject({ urls: ['ws://config-host:8600'], tokens: { 'ws://config-host:8600': 'from-config' }, fleet: false });
  expect(resolveSettings({}, withConfig({ KINDLING_URL: 'ws://env-host:8600', KINDLING_TOKEN: 'from-env' }))).toMatchObject({
    urls: ['ws://env-host:8600'],
    tokens: { 'ws://env-host:8600': 'from-env' },
  });
  expect(resolveSettings({ url: 'ws://flag-host:8600', token: 'from-flag' }, withConfig({ KINDLING_URL: 'ws://env-host:8600', KINDLING_TOKEN: 'x' }))).toMatchObject({
    urls: ['ws://flag-host:8600'],
    tokens: { 'ws://flag-host:8600': 'from-flag' },
  });
  // An agent list given as a flag is a fleet, and overrides KINDLING_URL.
  expect(resolveSettings({ agents: 'ws://a:8600, ws://b:8600' }, withConfig({ KINDLING_URL: 'ws://env-host:8600' }))).toMatchObject({
    urls: ['ws://a:8600', 'ws://b:8600'],
    fleet: true,
  });
});

it("finds the local agent's token file for a loopback agent only", () => {
  const host = join(dir, 'host');
  expect(resolveSettings({}, env({}, host))).toMatchObject({ tokens: { 'ws://127.0.0.1:8600': 'local-token' } });
  expect(resolveSettings({ url: 'ws://localhost:9000' }, env({}, host))).toMatchObject({ tokens: { 'ws://localhost:9000': 'local-token' } });
  // This host's secret is never sent to another host.
  expect(resolveSettings({ url: 'wss://storage-2:8600' }, env({}, host))).toEqual(expect.objectContaining({ tokens: { 'wss://storage-2:8600': undefined } }));
  expect(resolveSettings({}, env({}, dir))).toEqual(expect.objectContaining({ tokens: { 'ws://127.0.0.1:8600': undefined } }));
});

it('refuses contradictory or unreadable settings with a clear message', () => {
  expect(() => resolveSettings({ url: 'ws://a:1', agents: 'ws://b:1' }, env())).toThrow('give either --url or --agents/--agents-file, not both');
  expect(() => resolveSettings({ token: 't', tokenFile: 'f' }, env())).toThrow('give --token or --token-file, not both');
  expect(() => resolveSettings({ agents: 'ws://a:1,ws://b:1,ws://a:1' }, env())).toThrow('the agent ws://a:1 is listed twice');
  expect(() => resolveSettings({ tokenFile: 'missing' }, env())).toThrow(`cannot read --token-file ${join(dir, 'missing')}: ENOENT`);
  expect(() => resolveSettings({ config: 'missing.yaml' }, env())).toThrow(`cannot read client config ${join(dir, 'missing.yaml')}: ENOENT`);
  expect(() => resolveSettings({ timeout: '-1' }, env())).toThrow('--timeout takes a positive number of seconds, not -1');
});

it('reads no client config at all when KINDLING_CONFIG is empty, not the current folder', () => {
  const withConfig = (vars: NodeJS.ProcessEnv): Environment => ({ env: vars, cwd: dir, home: join(dir, 'home') });
  expect(resolveSettings({}, withConfig({ KINDLING_CONFIG: '' }))).toEqual(expect.objectContaining({ urls: ['ws://127.0.0.1:8600'], tokens: { 'ws://127.0.0.1:8600': undefined } }));
});

it('gives each agent of a client config its own token, and flags or env one for all', async () => {
  const config = join(dir, 'per-agent.yaml');
  await writeFile(join(dir, 'b-token'), 'token-b\n');
  await writeFile(config, 'token: fleet-wide\nagents:\n  - ws://a:8600\n  - url: ws://b:8600\n    tokenFile: b-token\n  - url: ws://c:8600\n    token: token-c\n');
  const settings = resolveSettings({ config }, env());
  expect(settings.urls).toEqual(['ws://a:8600', 'ws://b:8600', 'ws://c:8600']);
  expect(settings.urls.map((u) => settings.tokens[u])).toEqual(['fleet-wide', 'token-b', 'token-c']);
  const overridden = resolveSettings({ config }, env({ KINDLING_TOKEN: 'from-env' }));
  expect(overridden.urls.map((u) => overridden.tokens[u])).toEqual(['from-env', 'from-env', 'from-env']);
  await writeFile(config, 'agents:\n  - url: ws://a:8600\n    tokn: x\n');
  expect(() => resolveSettings({ config }, env())).toThrow(`the client config ${config}: agents[0] has unknown keys: tokn (known: url, token, tokenFile)`);
});

it('pins one agent of the fleet with --agent', () => {
  expect(resolveSettings({ agents: 'ws://a:8600,ws://b:8600', agent: 'ws://b:8600' }, env())).toMatchObject({ urls: ['ws://b:8600'], fleet: true });
  expect(() => resolveSettings({ agents: 'ws://a:8600', agent: 'ws://z:8600' }, env())).toThrow('--agent ws://z:8600 is not one of the agents: ws://a:8600');
});

it('reads TLS files from flags over env over the client config', async () => {
  for (const f of ['ca', 'cert', 'key', 'ca2']) await writeFile(join(dir, `${f}.pem`), `${f} pem\n`);
  const config = join(dir, 'tls.yaml');
  await writeFile(config, `url: wss://h:8600\nca: ${join(dir, 'ca.pem')}\ncert: ${join(dir, 'cert.pem')}\nkey: ${join(dir, 'key.pem')}\n`);
  const text = (s: Settings) => Object.fromEntries(Object.entries(s.tls).map(([k, v]: [string, Buffer]) => [k, v.toString().trim()]));
  expect(text(resolveSettings({ config }, env()))).toEqual({ ca: 'ca pem', cert: 'cert pem', key: 'key pem' });
  expect(text(resolveSettings({ config }, env({ KINDLING_CA: 'ca2.pem' })))).toMatchObject({ ca: 'ca2 pem' });
  expect(text(resolveSettings({ config, ca: 'ca.pem' }, env({ KINDLING_CA: 'ca2.pem' })))).toMatchObject({ ca: 'ca pem' });
  expect(() => resolveSettings({ cert: 'cert.pem' }, env())).toThrow('give --cert and --key together');
});
