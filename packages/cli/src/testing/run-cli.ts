import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** The built bin, run as users run it: a child process (src/testing -> dist/bin.js). */
export const CLI_BIN = resolve(import.meta.dirname, '../../dist/bin.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The only environment the CLI sees besides PATH and a HOME without a client config. */
  env?: Record<string, string>;
  cwd?: string;
  home?: string;
  /** Close the reading end of stdout at once, as `kindling ... | head` does once it has its lines. */
  closeStdout?: boolean;
  /** Kill the CLI (code null) if it has not ended by then: a hang is a failure the test reports, not waits out. */
  killAfterMs?: number;
}

/** Runs `kindling ...args` to its end. No KINDLING_* from the test's own environment leaks in. */
export function runCli(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  const env = { PATH: process.env.PATH ?? '', HOME: options.home ?? '/nonexistent', ...options.env };
  const child = spawn(process.execPath, [CLI_BIN, ...args], { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  if (options.closeStdout) child.stdout.destroy();
  else child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = options.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
  return new Promise((res, rej) => {
    child.once('error', rej);
    child.once('close', (code) => {
      clearTimeout(killer);
      res({ code, stdout, stderr });
    });
  });
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g;

/**
 * Table output with what changes per run masked at the same width, so columns stay aligned: each
 * distinct id becomes `id-1`, `id-2`, ... in order of appearance, times and loopback ports fixed.
 */
export function mask(text: string): string {
  const ids = new Map<string, string>();
  return text
    .replace(UUID, (id) => {
      if (!ids.has(id)) ids.set(id, `id-${ids.size + 1}`);
      return ids.get(id)!.padEnd(36, '.');
    })
    .replace(TIME, 'YYYY-MM-DDTHH:MM:SS.mmmZ')
    .replace(/127\.0\.0\.1:\d{5}/g, '127.0.0.1:PPPPP');
}
