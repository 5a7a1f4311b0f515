import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = resolve(import.meta.dirname, '../dist/bin.js');
const dir = mkdtempSync(join(tmpdir(), 'kindling-bin-imports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Records every module URL the process resolves (on the loader's thread, into TRACE_FILE).
const HOOK = join(dir, 'hook.mjs');
writeFileSync(
  HOOK,
  `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.TRACE_FILE, r.url + '\\n');
  return r;
}`,
);
const REGISTER = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(`file://${HOOK}`)})`;

/** The npm packages a `kindling-agent` run loaded (stdio not a terminal, as under systemd). */
function packagesLoaded(args: string[]): Set<string> {
  const trace = traceFile(args);
  const run = spawnSync(process.execPath, ['--import', REGISTER, BIN, ...args], { env: { ...process.env, TRACE_FILE: trace }, encoding: 'utf8' });
  expect(run.stderr).not.toMatch(/Error/);
  return packagesIn(trace);
}

function traceFile(args: string[]): string {
  const trace = join(dir, `trace-${args.join('-').replace(/\W/g, '')}`);
  writeFileSync(trace, '');
  return trace;
}

const PACKAGE = /node_modules\/((?:@[^/]+\/)?[^/.][^/]*)\//g;
const packageNames = (text: string): string[] => [...text.matchAll(PACKAGE)].map((m) => m[1] as string);

/** The bin is a bundle (scripts/bundle-agent.mjs): the packages inside each of its files, from esbuild's metafile. */
const bundleInputs = new Map(
  Object.entries((JSON.parse(readFileSync(resolve(import.meta.dirname, '../dist/.bundle.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> }).outputs).map(
    ([file, { inputs }]) => [resolve(import.meta.dirname, '..', file), inputs],
  ),
);
const bundled = new Map([...bundleInputs].map(([file, inputs]) => [file, packageNames(Object.keys(inputs).join('\n'))]));

/** The agent's own source files inside the bundle's files a traced run loaded. */
function sourcesIn(trace: string): Set<string> {
  const urls = readFileSync(trace, 'utf8').split('\n').filter((u) => u.startsWith('file://'));
  return new Set(urls.flatMap((u) => Object.keys(bundleInputs.get(fileURLToPath(u)) ?? {}).filter((i) => i.startsWith('src/'))));
}

/** The packages a traced run loaded: resolved from node_modules, or inside the bundle's files it loaded. */
function packagesIn(trace: string): Set<string> {
  const urls = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const inBundle = urls.filter((u) => u.startsWith('file://')).flatMap((u) => bundled.get(fileURLToPath(u)) ?? []);
  return new Set([...packageNames(urls.join('\n')), ...inBundle]);
}

const SERVING = ['@hono/node-server', 'hono', 'ws', 'level', 'prom-client'];

describe('kindling-agent loads only what the path needs (issue 20)', () => {
  it('--version and --help load no server, index, metrics, logger, command runner, config or protocol parser', () => {
    for (const flag of ['--version', '--help']) {
      const loaded = packagesLoaded([flag]);
      for (const heavy of [...SERVING, 'execa', 'pino', 'pino-pretty', 'yaml', 'valibot', 'msgpackr']) {
        expect(loaded, `${flag} loads ${heavy}`).not.toContain(heavy);
      }
    }
  });

  it('check-config loads no server, index or metrics, and no pretty printer when stderr is not a terminal', () => {
    const config = join(dir, 'agent.json');
    writeFileSync(config, JSON.stringify({ dataDir: join(dir, 'data'), token: 'bin-imports-token-0123456789', backends: [] }));
    const loaded = packagesLoaded(['check-config', '--config', config]);
    for (const heavy of [...SERVING, 'pino-pretty', 'yaml']) expect(loaded, `check-config loads ${heavy}`).not.toContain(heavy);
  });

  it('a YAML config loads the YAML parser (JSON ones, above, do not)', () => {
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, `dataDir: ${join(dir, 'data')}\ntoken: bin-imports-token-0123456789\nbackends: []\n`);
    expect(packagesLoaded(['check-config', '--config', config])).toContain('yaml');
  });

  it('serving loads only the configured backends\' drivers, and prom-client only after ready, at the first scrape, which still counts what came before', async () => {
    const token = 'bin-imports-token-0123456789';
    const config = join(dir, 'serve.json');
    mkdirSync(join(dir, 'share'));
    const nfs = { name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'qcow2' };
    writeFileSync(config, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, dataDir: join(dir, 'serve-data'), token, backends: [nfs] }));
    const trace = traceFile(['serve']);
    const { KINDLING_TOKEN: _client, ...env } = process.env;
    const agent = spawn(process.execPath, ['--import', REGISTER, BIN, '--config', config], { env: { ...env, TRACE_FILE: trace }, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(createInterface({ input: agent.stdout }), 'line')) as [string];
      const { port } = JSON.parse(line) as { port: number };
      // What serving needs is seen loaded, from inside the bundle too: the checks above can fail.
      for (const used of ['hono', 'ws', 'pino', 'msgpackr', 'level']) expect(packagesIn(trace)).toContain(used);
      expect(packagesIn(trace)).not.toContain('prom-client');
      // Only the configured backends' drivers.
      expect(sourcesIn(trace)).toContain('src/drivers/nfs/driver.ts');
      expect(sourcesIn(trace)).not.toContain('src/drivers/lvm/driver.ts');
      const url = `http://127.0.0.1:${port}/metrics`;
      expect((await fetch(url)).status).toBe(401);
      const scrape = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(scrape.status).toBe(200);
      expect(scrape.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await scrape.text()).toMatch(/^kindling_auth_refusals_total\{reason="bad_token"\} 1$/m);
      expect(packagesIn(trace)).toContain('prom-client');
    } finally {
      agent.kill('SIGKILL');
    }
  });
});
