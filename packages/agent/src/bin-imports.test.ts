import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decode, encode, PROTOCOL_VERSION } from '@kindling/protocol';

const BIN = resolve(import.meta.dirname, '../dist/bin.js');
const MAIN = resolve(import.meta.dirname, '../dist/main.cjs');
const dir = mkdtempSync(join(tmpdir(), 'kindling-bin-imports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * What a `kindling-agent` run evaluated, from the V8 coverage Node writes as the process exits
 * (NODE_V8_COVERAGE): every file it ran (the npm packages outside the bin's bundles among them), and of
 * the bundles (scripts/bundle-agent.mjs), the modules they hold whose code ran. In a bundle a module
 * imported dynamically, and what it imports, is a function keyed by its path that runs at its first
 * import; every other module runs as the bundle loads.
 */
interface Loaded {
  files: Set<string>;
  packages: Set<string>;
  /** The agent's own source files among the bundles' modules that ran. */
  sources: Set<string>;
}

const PACKAGE = /node_modules\/((?:@[^/]+\/)?[^/.][^/]*)\//g;
const packageNames = (text: string): string[] => [...text.matchAll(PACKAGE)].map((m) => m[1] as string);

/** The bundle's files, each with the modules it holds (esbuild's metafile) and those of them it evaluates lazily. */
const bundles = new Map(
  Object.entries((JSON.parse(readFileSync(resolve(import.meta.dirname, '../dist/.bundle.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> }).outputs).map(
    ([file, { inputs }]) => {
      const path = resolve(import.meta.dirname, '..', file);
      const text = readFileSync(path, 'utf8');
      const modules = Object.keys(inputs);
      return [path, { modules, lazy: new Set(modules.filter((m) => text.includes(`\n  ${JSON.stringify(m)}(`))) }];
    },
  ),
);

interface Coverage {
  result: { url: string; functions: { functionName: string; ranges: { count: number }[] }[] }[];
}

function loadedIn(coverageDir: string): Loaded {
  const files: string[] = [];
  const modules: string[] = [];
  for (const name of readdirSync(coverageDir)) {
    for (const { url, functions } of (JSON.parse(readFileSync(join(coverageDir, name), 'utf8')) as Coverage).result) {
      const file = url.startsWith('file://') ? fileURLToPath(url) : url;
      files.push(file);
      const bundle = bundles.get(file);
      if (!bundle) continue;
      const ran = new Set(functions.filter((f) => (f.ranges[0]?.count ?? 0) > 0).map((f) => f.functionName));
      modules.push(...bundle.modules.filter((m) => !bundle.lazy.has(m) || ran.has(m)));
    }
  }
  return { files: new Set(files), packages: new Set(packageNames([...files, ...modules].join('\n'))), sources: new Set(modules.filter((m) => m.startsWith('src/'))) };
}

let runs = 0;
const coverageDir = (): string => {
  const coverage = join(dir, `coverage-${++runs}`);
  mkdirSync(coverage);
  return coverage;
};

/** What a `kindling-agent` run with these arguments loaded (stdio not a terminal, as under systemd). */
function loadedBy(args: string[]): Loaded {
  const coverage = coverageDir();
  const run = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, NODE_V8_COVERAGE: coverage }, encoding: 'utf8' });
  expect(run.stderr).not.toMatch(/Error/);
  return loadedIn(coverage);
}
const packagesLoaded = (args: string[]): Set<string> => loadedBy(args).packages;

/** Serves on `config` until `during` is done, then stops it as systemd does: what it loaded. */
async function served(config: string, during: (port: number) => Promise<void>): Promise<Loaded> {
  const coverage = coverageDir();
  const { KINDLING_TOKEN: _client, ...env } = process.env;
  const agent = spawn(process.execPath, [BIN, '--config', config], { env: { ...env, NODE_V8_COVERAGE: coverage }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(agent, 'exit') as Promise<[number | null]>;
  try {
    const [line] = (await once(createInterface({ input: agent.stdout }), 'line')) as [string];
    await during((JSON.parse(line) as { port: number }).port);
    agent.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
  } finally {
    agent.kill('SIGKILL');
  }
  return loadedIn(coverage);
}

/** Node's fetch implementation, which the first use of the global Request or Response loads. */
const UNDICI = 'node:internal/deps/undici/undici';

const SERVING = ['@hono/node-server', 'hono', 'ws', 'level', 'prom-client'];

describe('kindling-agent loads only what the path needs (issue 20)', () => {
  it('--version and --help load no server, index, metrics, logger, command runner, config or protocol parser', () => {
    for (const flag of ['--version', '--help']) {
      // Answered by bin.js without the agent's bundle.
      expect(loadedBy([flag]).files).not.toContain(MAIN);
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

  it('every other command runs the agent\'s bundle from the code cache the build made', () => {
    expect(loadedBy(['--version', '--help']).files).toContain(MAIN);
    // As the bin loads it: with the heap's growth capped first (heap.ts), the flags the cache was made under.
    const probe = [
      `import { loadBundle } from ${JSON.stringify(resolve(import.meta.dirname, '../dist/code-cache.js'))};`,
      `import { capHeapGrowth } from ${JSON.stringify(resolve(import.meta.dirname, '../dist/heap.js'))};`,
      `capHeapGrowth(); console.log(loadBundle(${JSON.stringify(MAIN)}).cache);`,
    ].join(' ');
    expect(spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' }).stdout.trim()).toBe('used');
  });

  it('serving loads only the configured backends\' drivers, hono only after ready, and prom-client at the first scrape, which still counts what came before', async () => {
    const token = 'bin-imports-token-0123456789';
    const config = join(dir, 'serve.json');
    mkdirSync(join(dir, 'share'));
    const nfs = { name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'qcow2' };
    writeFileSync(config, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, dataDir: join(dir, 'serve-data'), token, backends: [nfs] }));
    // What a start waits for: /healthz, then a client's session (bench/start.mjs).
    const ready = await served(config, async (port) => {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const ws = new WebSocket(`ws://127.0.0.1:${port}/rpc`, { headers: { authorization: `Bearer ${token}` } });
      await once(ws, 'open');
      ws.send(encode({ id: 1, op: 'hello', args: { protocolVersion: PROTOCOL_VERSION } }));
      const [reply] = (await once(ws, 'message')) as [Buffer];
      expect(decode(reply)).toMatchObject({ id: 1, ok: true });
      ws.close();
      await once(ws, 'close');
    });
    // hono and its node adapter (and with them Node's undici) load after ready, at the first request they answer.
    expect(ready.files).not.toContain(UNDICI);
    // What serving needs is seen loaded, from inside the bundle too: the checks above can fail.
    for (const used of ['ws', 'pino', 'msgpackr', 'level']) expect(ready.packages).toContain(used);
    for (const later of ['hono', '@hono/node-server', 'prom-client']) expect(ready.packages).not.toContain(later);
    // Only the configured backends' drivers.
    expect(ready.sources).toContain('src/drivers/nfs/driver.ts');
    expect(ready.sources).not.toContain('src/drivers/lvm/driver.ts');
    const scraped = await served(config, async (port) => {
      const url = `http://127.0.0.1:${port}/metrics`;
      expect((await fetch(url)).status).toBe(401);
      const scrape = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(scrape.status).toBe(200);
      expect(scrape.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await scrape.text()).toMatch(/^kindling_auth_refusals_total\{reason="bad_token"\} 1$/m);
    });
    expect(scraped.packages).toContain('prom-client');
    expect(scraped.packages).toContain('hono');
    expect(scraped.files).toContain(UNDICI);
  });
});
