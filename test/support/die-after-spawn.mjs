// An agent process's last instant: it starts one command through its runner (`sleep <marker>`) and is
// SIGKILLed in the same turn of the event loop, before anything else of its own can run. It prints the
// command's pid first, so the test knows the command was started, then dies.
import { syncBuiltinESMExports } from 'node:module';
import childProcess from 'node:child_process';
import { writeSync } from 'node:fs';

const [marker] = process.argv.slice(2);
// Only to learn the pid the runner does not expose: every spawn is recorded, then passed on unchanged.
const spawned = [];
const spawn = childProcess.spawn;
childProcess.spawn = (...args) => {
  const child = spawn(...args);
  spawned.push(child.pid);
  return child;
};
syncBuiltinESMExports();
const { run } = await import('../../packages/agent/dist/exec/run.js');
void run(['sleep', marker]).catch(() => undefined);
setImmediate(() => {
  writeSync(1, `${JSON.stringify(spawned)}\n`);
  process.kill(process.pid, 'SIGKILL');
});
