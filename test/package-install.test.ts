import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The packages as a stranger gets them: packed by `pnpm pack` from a fresh copy of the workspace (no dist,
// so the prepack build must make it), installed with npm into projects of their own, type-checked with
// default compiler settings and run. npm resolves third-party dependencies from its cache first
// (`--prefer-offline`) and asks the registry only for what the cache lacks.
const ROOT = resolve(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const ROOT_FILES = ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', 'tsconfig.base.json', 'tsconfig.json', 'LICENSE'];
const TOKEN = 'package-install-token-0123456789';
const exec = promisify(execFile);

// Under `pnpm test` the environment carries pnpm's npm_* settings, which npm would take for its own.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

/** Runs a command; a failure throws with its command line and output, so the cause reads in the test report. */
async function run(command: string, args: string[], cwd: string): Promise<string> {
  try {
    return (await exec(command, args, { cwd, env, maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    throw new Error(`\`${[command, ...args].join(' ')}\` in ${cwd} failed (${String(e.code)}):\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const exists = (path: string) => stat(path).then(() => true, () => false);

let work: string;
let sdkUser: string;
let agentHost: string;
const tarballs: Record<'protocol' | 'sdk' | 'agent', string> = { protocol: '', sdk: '', agent: '' };

/** A project of its own with these tarballs installed by npm, as `npm install ./x.tgz` does for a user. */
async function npmProject(name: string, ...packed: string[]): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packed], dir);
  return dir;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'kindling-pack-'));
  // A fresh clone: the workspace's sources and manifests without node_modules or any build output.
  const clone = join(work, 'clone');
  const skip = (src: string) => ['node_modules', 'dist'].includes(basename(src)) || src.endsWith('.tsbuildinfo');
  for (const f of ROOT_FILES) await cp(join(ROOT, f), join(clone, f));
  for (const script of ['agent-code-cache.mjs', 'bin-mode.mjs', 'bundle-agent.mjs', 'bundle-assert.cjs']) await cp(join(ROOT, 'scripts', script), join(clone, 'scripts', script));
  await cp(join(ROOT, 'packages'), join(clone, 'packages'), { recursive: true, verbatimSymlinks: true, filter: (src) => !skip(src) });
  await run('pnpm', ['install', '--offline', '--frozen-lockfile', '--reporter=silent'], clone);
  const out = join(work, 'tarballs');
  const pack = async (name: keyof typeof tarballs) => {
    await run('pnpm', ['pack', '--pack-destination', out], join(clone, 'packages', name));
    tarballs[name] = join(out, `kindling-${name}-0.1.0.tgz`);
    expect(await exists(tarballs[name]), `pnpm pack made no ${tarballs[name]}`).toBe(true);
  };
  // The protocol first: the SDK's and the agent's builds then only read its output, and may run side by side.
  await pack('protocol');
  await Promise.all([pack('sdk'), pack('agent')]);
  [sdkUser, agentHost] = await Promise.all([
    npmProject('sdk-user', tarballs.protocol, tarballs.sdk),
    npmProject('agent-host', tarballs.protocol, tarballs.agent),
  ]);
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** What a published package must and must not carry, checked on its installed copy. */
async function expectPublishable(pkgDir: string): Promise<void> {
  const manifest = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as Record<string, unknown>;
  expect(manifest).toMatchObject({ license: 'Apache-2.0', engines: { node: '>=20' }, repository: { type: 'git' } });
  // pnpm pack turned workspace ranges into the version they name.
  expect(JSON.stringify(manifest.dependencies ?? {})).not.toContain('workspace:');
  expect(await readFile(join(pkgDir, 'LICENSE'), 'utf8')).toBe(await readFile(join(ROOT, 'LICENSE'), 'utf8'));
  expect((await readFile(join(pkgDir, 'README.md'), 'utf8')).length).toBeGreaterThan(200);

  const files = (await filesUnder(pkgDir)).map((f) => f.slice(pkgDir.length + 1));
  expect(files).toContain('dist/index.js');
  expect(files).toContain('dist/index.d.ts');
  expect(files.filter((f) => /\.test\.|(^|\/)testing\/|\.tsbuildinfo$/.test(f))).toEqual([]);
  // Every source a map names (JS maps for stack traces, declaration maps for go-to-definition) is shipped.
  const maps = files.filter((f) => f.endsWith('.map'));
  expect(maps.length).toBeGreaterThan(0);
  const unresolved: string[] = [];
  for (const map of maps) {
    const { sources, sourceRoot = '' } = JSON.parse(await readFile(join(pkgDir, map), 'utf8')) as { sources: string[]; sourceRoot?: string };
    for (const source of sources) {
      if (!(await exists(resolve(pkgDir, dirname(map), sourceRoot, source)))) unresolved.push(`${map} -> ${source}`);
    }
  }
  expect(unresolved).toEqual([]);
}

describe('protocol and SDK installed from their tarballs', () => {
  let agent: AgentProcess;
  beforeAll(async () => {
    agent = await startAgentProcess({ token: TOKEN });
  });
  afterAll(async () => {
    await agent?.dispose();
  });

  it('carry a license, a README, built code, the sources their maps name, and nothing of the workspace', async () => {
    await expectPublishable(join(sdkUser, 'node_modules', '@kindling', 'protocol'));
    await expectPublishable(join(sdkUser, 'node_modules', '@kindling', 'sdk'));
  });

  it('type-check strictly in a project that names no types of its own, and drive a real agent', async () => {
    // No `types` in the project's config: the SDK's types bring Node's along themselves.
    await writeFile(
      join(sdkUser, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', strict: true, skipLibCheck: false }, files: ['main.ts'] }),
    );
    await writeFile(
      join(sdkUser, 'main.ts'),
      [
        "import { PROTOCOL_VERSION } from '@kindling/protocol';",
        "import { Agent, NotFoundError, type VolumeJson } from '@kindling/sdk';",
        '',
        'const agent = await Agent.connect(process.env.KINDLING_URL!, { token: process.env.KINDLING_TOKEN });',
        "const vol = await (await agent.backend('nfs')).createVolume({ size: 1, name: 'from-a-tarball' });",
        'const json: VolumeJson = vol.json;',
        "const missing = await agent.backend('lvm').then(() => 'found', (e: unknown) => (e instanceof NotFoundError ? e.code : String(e)));",
        'await vol.delete();',
        'await agent.close();',
        'console.log(JSON.stringify({ protocol: PROTOCOL_VERSION, name: json.name, size: json.size, status: json.status, missing }));',
        '',
      ].join('\n'),
    );
    await run(TSC, ['-p', '.'], sdkUser);
    const out = await exec(process.execPath, ['main.js'], { cwd: sdkUser, env: { ...env, KINDLING_URL: agent.url, KINDLING_TOKEN: TOKEN } });
    expect(JSON.parse(out.stdout)).toEqual({ protocol: 1, name: 'from-a-tarball', size: 1, status: 'available', missing: 'NOT_FOUND' });
  });
});

describe('the agent installed from its tarball', () => {
  it('packs dist/bin.js executable, as a link to it in /usr/bin needs', async () => {
    const listing = await run('tar', ['-tvzf', tarballs.agent], work);
    expect(listing).toMatch(/^-rwxr-xr-x .* package\/dist\/bin\.js$/m);
  });

  it('carries a license, a README, built code and the sources its maps name, without the test helpers', async () => {
    await expectPublishable(join(agentHost, 'node_modules', '@kindling', 'agent'));
    const probe = "import('@kindling/agent/testing').then(() => console.log('exported'), (e) => console.log(e.code))";
    const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', probe], { cwd: agentHost, env });
    expect(stdout.trim()).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  it('starts as the kindling-agent bin on a config of its own and answers /healthz', async () => {
    const dir = join(agentHost, 'state');
    await mkdir(join(dir, 'share'), { recursive: true });
    const config = join(dir, 'agent.json');
    const backends = [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'qcow2' }];
    await writeFile(config, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, dataDir: join(dir, 'data'), token: TOKEN, backends }));

    const child = spawn(join(agentHost, 'node_modules', '.bin', 'kindling-agent'), ['--config', config], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      const listening = await new Promise<{ port: number }>((res, rej) => {
        // A guard, not a measure: a hung start fails with what the agent said instead of a bare timeout.
        const timer = setTimeout(() => rej(new Error(`the installed kindling-agent did not listen in 20 s:\n${stderr}`)), 20_000);
        createInterface({ input: child.stdout }).on('line', (line) => {
          if (!line.startsWith('{')) return;
          const msg = JSON.parse(line) as { event?: string; port: number };
          if (msg.event !== 'listening') return;
          clearTimeout(timer);
          res(msg);
        });
        void exited.then(([code]) => {
          clearTimeout(timer);
          rej(new Error(`the installed kindling-agent exited with ${code} before listening:\n${stderr}`));
        });
      });
      const health = await fetch(`http://127.0.0.1:${listening.port}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok', version: '0.1.0' });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toEqual([0, null]);
  });
});
