// The storage probe of this host: an agent process of its own with an NFS backend on a local-folder
// share, and the commands run here (execFile, argv only).
import { execFile, type ExecFileException } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '@kindling/sdk';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import type { ImageFormat, Run, StorageProbe } from './storage-probe.js';

export const runLocal: Run = (argv) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (!file) return reject(new Error('runLocal: empty argv'));
    execFile(file, args, { maxBuffer: 64 << 20 }, (err: ExecFileException | null, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      // an exit code or a signal is the command's result; a command that could not start is a broken machine
      if (typeof err.code === 'number' || err.signal) return resolve({ code: typeof err.code === 'number' ? err.code : null, stdout, stderr });
      reject(err);
    });
  });

/** An NFS backend `nfs` on a local-folder share, with `format` volume files, served by its own agent. */
export function hostNfsProbe(format: ImageFormat): StorageProbe {
  // named before the agent starts (the layout is read while the suite is declared), made when it starts
  const dir = join(tmpdir(), `kindling-suite-${randomUUID()}`);
  const folder = join(dir, 'share');
  let proc: AgentProcess | undefined;
  return {
    backend: 'nfs',
    where: `NFS local folder, ${format}`,
    layout: { driver: 'nfs', thin: true, folder, format, nfsMounted: false },
    run: runLocal,
    async setUp() {
      await mkdir(dir);
      proc = await startAgentProcess({ dir, backends: () => [{ name: 'nfs', driver: 'nfs', shares: [folder], format }] });
    },
    connect() {
      if (!proc) throw new Error('the host probe is not set up');
      return Agent.connect(proc.url);
    },
    async tearDown() {
      await proc?.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
