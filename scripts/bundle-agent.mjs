// kindling-agent ships as dist/bin.js bundled by esbuild (issue 20: start to ready measured ~45 % faster
// than the module graph tsc emits, most of which was the loader resolving ~150 files). Split at the dynamic
// imports, so --version and --help still evaluate only the few modules they need; the chunks sit beside
// bin.js in dist/ (version.ts finds ../package.json from there). Kept out of the bundle: level (its native
// addon finds its prebuilds relative to itself), prom-client (loaded at the first scrape), pino-pretty
// (loaded by name, on a terminal only) and msgpackr's optional native extension.
// The metafile (dist/.bundle.json) says which packages each chunk holds: bin-imports.test.ts reads it,
// and the next build removes the chunks it lists before writing new ones.
// Usage: node scripts/bundle-agent.mjs (after tsc -b, which builds @kindling/protocol's dist).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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

/** The bundled packages' `require('assert')` gets bundle-assert.cjs (its header says why). */
const assertShim = {
  name: 'assert-shim',
  setup(b) {
    b.onResolve({ filter: /^(node:)?assert$/ }, (args) =>
      args.importer.includes('/node_modules/') ? { path: resolve(import.meta.dirname, 'bundle-assert.cjs') } : undefined,
    );
  },
};

const result = await build({
  absWorkingDir: agent,
  entryPoints: ['src/bin.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: '[name]-[hash]',
  external: ['level', 'prom-client', 'pino-pretty', 'msgpackr-extract'],
  // The CommonJS packages inside (pino, ws) call require for Node's own modules.
  banner: { js: "import { createRequire as __kindlingRequire } from 'node:module';\nconst require = __kindlingRequire(import.meta.url);" },
  plugins: [assertShim],
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(metafile, JSON.stringify(result.metafile));
