import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

/** `pnpm bench --quick`: every section at its smallest, so the bench cannot rot unnoticed (issue 20). */
function runQuickBench(): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, ['bench/run.mjs', '--quick'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => res({ code, out }));
  });
}

describe('the bench in quick mode', () => {
  it('completes and prints every section, each with its figures', async () => {
    const { code, out } = await runQuickBench();
    expect(out).not.toMatch(/failed [1-9]|bench failed|exited with|skipped/);
    expect(code).toBe(0);
    for (const header of [
      'start:',
      'launch:',
      'wire:',
      'nfs:',
      'lvm:',
      'lvm-scale:',
      'fleet:',
      'load:',
      'scale:',
      'csi:',
      'changes:',
      'move:',
    ]) {
      expect(out).toContain(`\n${header}`);
    }
    for (const figure of [
      'kindling-agent --version',
      'spawn to ready',
      'stop when idle',
      "the agent's runner",
      'agent-side breakdown',
      'synced index batches',
      'volume.get vs raw echo',
      'agent alone (raw client) vs raw echo',
      'nfs qcow2 create+delete vs bare commands',
      'nfs raw create+delete vs bare commands',
      'lvm create+delete vs bare commands',
      'of a process each',
      'fleet.volumes()',
      'Fleet.connect',
      'SDK heap per idle agent',
      'fan-out volumes()',
      'placement spread',
      'throughput',
      'start to ready after a clean stop',
      'start to ready after a kill',
      'storage check after ready done',
      'stop during the storage check after ready',
      'list all, SDK volumes()',
      'list all, kindling volume list -o jsonl',
      'get by name',
      'SDK reconnect resync',
      'kindling-csi / SDK',
      'reconnect resync bytes, changes vs re-read',
      'copy throughput vs qemu-img convert',
    ]) {
      expect(out).toContain(figure);
    }
  }, 600_000);
});
