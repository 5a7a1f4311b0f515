#!/usr/bin/env node
import { parseCli, USAGE } from './main.js';
import { startCsiServer } from './server.js';

let options;
try {
  options = parseCli(process.argv.slice(2), process.env);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}
if (!options) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const server = await startCsiServer(options);
process.stdout.write(`${JSON.stringify({ event: 'listening', endpoint: server.address, mode: options.mode })}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
