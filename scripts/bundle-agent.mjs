// kindling-agent ships as two esbuild bundles in dist/: bin.js, which answers --version and --help itself,
// and main.cjs, every other command, which bin.js runs through a V8 code cache made here after the build
// (agent-code-cache.mjs, code-cache.ts; issue 20). One bundle measured ~45 % faster to ready than the
// module graph tsc emits (the loader resolved ~150 files); CommonJS because Node 20 caches no ES module's
// code. Its dynamic imports become modules evaluated at their first import, so check-config and reindex
// still evaluate no server. version.ts finds ../package.json from dist/, level's addon is found from where
// level is installed (levelBinding below). Kept out of the bundle: prom-client (loaded at the first scrape),
// pino-pretty (loaded by name, on a terminal only) and msgpackr's optional native extension.
// The metafile (dist/.bundle.json) says which modules each output holds: bin-imports.test.ts reads it,
// and the next build removes the outputs it lists before writing new ones.
// Usage: node scripts/bundle-agent.mjs (after tsc -b, which builds @kindling/protocol's dist and
// dist/code-cache.js, which the cache's maker uses).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { build } from '../packages/agent/node_modules/esbuild/lib/main.js';

const agent = resolve(import.meta.dirname, '../packages/agent');
const dist = join(agent, 'dist');
const metafile = join(dist, '.bundle.json');

try {
  const previous = JSON.parse(readFileSync(metafile, 'utf8'));
  for (const file of Object.keys(previous.outputs)) if (!file.endsWith('/bin.js')) rmSync(join(agent, file), { force: true });
} catch {
  // No bundle yet.
}
// A cache left from another bundle would not be used (code-cache.ts checks), but would ship.
rmSync(join(dist, 'main.cjs.cache'), { force: true });

/** The bundled packages' `require('assert')` gets bundle-assert.cjs (its header says why). */
const assertShim = {
  name: 'assert-shim',
  setup(b) {
    b.onResolve({ filter: /^(node:)?assert$/ }, (args) =>
      args.importer.includes('/node_modules/') ? { path: resolve(import.meta.dirname, 'bundle-assert.cjs') } : undefined,
    );
  },
};

/**
 * classic-level (level's Node implementation) loads its native addon from its own folder, which inside the
 * bundle would be dist/: its binding.js gets that folder from where level is installed instead, so that the
 * rest of level (~30 files the loader resolved one by one at each start) can be in the bundle.
 */
const levelBinding = {
  name: 'level-binding',
  setup(b) {
    b.onLoad({ filter: /[/\\]classic-level[/\\]binding\.js$/ }, (args) => ({
      contents: [
        "const { dirname } = require('node:path');",
        "const level = dirname(require.resolve('level/package.json'));",
        "module.exports = require('node-gyp-build')(dirname(require.resolve('classic-level/package.json', { paths: [level] })));",
      ].join('\n'),
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

const common = {
  absWorkingDir: agent,
  bundle: true,
  platform: 'node',
  target: 'node20',
  // The two package.json files are only looked up (levelBinding).
  external: ['prom-client', 'pino-pretty', 'msgpackr-extract', 'level/package.json', 'classic-level/package.json'],
  plugins: [assertShim, levelBinding],
  metafile: true,
  logLevel: 'warning',
};
const [bin, main] = await Promise.all([
  build({ ...common, entryPoints: ['src/bin.ts'], outfile: 'dist/bin.js', format: 'esm' }),
  build({
    ...common,
    entryPoints: ['src/main.ts'],
    outfile: 'dist/main.cjs',
    format: 'cjs',
    // Strict as the ES modules it is made of (and as the ESM bundle was); import.meta.url (version.ts,
    // log.ts) from the bundle's own path.
    banner: { js: "'use strict';\nconst __kindlingUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__kindlingUrl' },
  }),
]);
writeFileSync(metafile, JSON.stringify({ outputs: { ...bin.metafile.outputs, ...main.metafile.outputs } }));

const cache = spawnSync(process.execPath, [resolve(import.meta.dirname, 'agent-code-cache.mjs')], { encoding: 'utf8' });
if (cache.status !== 0) throw new Error(`making dist/main.cjs.cache failed (exit ${cache.status}):\n${cache.stdout}${cache.stderr}`);
