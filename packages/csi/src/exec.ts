import { execFile } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import { CsiError } from './errors.js';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command from an argv array (never a shell string) and reports its exit code. */
export function run(command: string, args: readonly string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 120_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new CsiError(status.INTERNAL, `${command} could not run: ${err.message}`));
        return;
      }
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** As run, INTERNAL with the command and its stderr tail when it fails. */
export async function must(command: string, args: readonly string[]): Promise<string> {
  const r = await run(command, args);
  if (r.code !== 0) throw new CsiError(status.INTERNAL, `${[command, ...args].join(' ')} exited ${r.code}: ${r.stderr.trim().slice(-500)}`);
  return r.stdout;
}
