#!/usr/bin/env node
import { createInterface } from 'node:readline';
import { main } from './main.js';
import { processEnvironment } from './settings.js';

// `kindling volume list | head`: the reader has what it wanted and left; that is not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stderrIsTTY: process.stderr.isTTY === true,
  stdinIsTTY: process.stdin.isTTY === true,
  ask: (question) =>
    new Promise((resolve) => {
      const terminal = createInterface({ input: process.stdin, output: process.stderr });
      terminal.question(question, (answer) => {
        terminal.close();
        resolve(answer);
      });
    }),
  environment: processEnvironment(),
  exitCode: 0,
});
