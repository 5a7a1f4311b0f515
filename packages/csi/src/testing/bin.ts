import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

/** The built kindling-csi, as Kubernetes runs it. */
export const CSI_BIN = resolve(import.meta.dirname, '../../dist/bin.js');

export interface CsiBin {
  child: ChildProcess;
  /** Its "listening" line; rejects when it exits first. */
  listening: Promise<{ endpoint: string }>;
  exit: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

/** Starts the built bin with these flags and only PATH and `env` in its environment. */
export function startBin(args: string[], env: Record<string, string>): CsiBin {
  const child = spawn(process.execPath, [CSI_BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const listening = new Promise<{ endpoint: string }>((res, rej) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const msg = JSON.parse(line) as { event: string; endpoint: string };
      if (msg.event === 'listening') res(msg);
    });
    void exit.then((code) => rej(new Error(`kindling-csi exited ${code}`)));
  });
  // A bin that exits at once never listens: that is the caller's to assert, not an unhandled rejection.
  listening.catch(() => {});
  return { child, listening, exit, stdout: () => stdout, stderr: () => stderr };
}
