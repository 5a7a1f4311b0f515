#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { loadBundle } from './code-cache.js';
import { capHeapGrowth } from './heap.js';
import { USAGE } from './usage.js';
import { AGENT_VERSION } from './version.js';

// --version and --help are answered from this small file; every other command (and any other spelling of
// these) runs in dist/main.cjs, the agent's code as one CommonJS bundle read with its code cache
// (scripts/bundle-agent.mjs builds both; issue 20).
const args = process.argv.slice(2);
const [only] = args.length === 1 ? args : [];
if (only === '--version' || only === '-v') console.log(AGENT_VERSION);
else if (only === '--help' || only === '-h') console.log(USAGE);
else {
  capHeapGrowth();
  (loadBundle(fileURLToPath(new URL('main.cjs', import.meta.url))).exports as typeof import('./main.js')).run(args);
}
