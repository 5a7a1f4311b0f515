#!/usr/bin/env node
import { main } from './main.js';
import { processEnvironment } from './settings.js';

process.exitCode = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stderrIsTTY: process.stderr.isTTY === true,
  environment: processEnvironment(),
  exitCode: 0,
});
