// The real-kernel lane's storage probe: the agent in the qemu guest and its backends, every check run
// inside the guest through the test-only exec helper (scripts/kernel-lane/guest-exec.mjs), never through
// an agent op. The checks themselves are test/support/storage-probe.ts's, shared with the host.
import { createHash } from 'node:crypto';
import { Agent } from '@kindling/sdk';
import { lvs, type LvRow, type Run, type StorageLayout, type StorageProbe } from '../../test/support/storage-probe.js';
import { guestExec, kernelEnv } from './kernel.js';

/** An NFS backend's layout: the agent mounts the share at os-brick's `<base>/<md5 of the share>`. */
const nfsLayout = (share: string): StorageLayout => ({
  driver: 'nfs',
  thin: true,
  folder: `/var/lib/kindling/mnt/${createHash('md5').update(share).digest('hex')}`,
  format: 'qcow2',
  nfsMounted: true,
});

/**
 * What each backend is made of in the guest (scripts/kernel-lane/run.sh configures the same). The suite-*
 * backends are cinderlib's functional suite's alone: it asserts their totals.
 */
const LAYOUTS: Record<string, StorageLayout> = {
  'lvm-thick': { driver: 'lvm', vg: 'kindling-thick', thin: false },
  'lvm-thin': { driver: 'lvm', vg: 'kindling-thin', pool: 'kindling-thin-pool', thin: true },
  nfs: nfsLayout('127.0.0.1:/export'),
  'suite-thick': { driver: 'lvm', vg: 'kindling-suite-thick', thin: false },
  'suite-thin': { driver: 'lvm', vg: 'kindling-suite-thin', pool: 'kindling-suite-pool', thin: true },
  'suite-nfs': nfsLayout('127.0.0.1:/suite'),
};

export const runInGuest: Run = (argv) => guestExec(argv);

/** The probe of one of the guest agent's backends. */
export function guestProbe(backend: string): StorageProbe {
  const layout = LAYOUTS[backend];
  if (!layout) throw new Error(`no layout known for backend ${backend}`);
  return {
    backend,
    where: 'real kernel',
    layout,
    run: runInGuest,
    connect() {
      const env = kernelEnv();
      return Agent.connect(env.url, { token: env.token });
    },
  };
}

/** The VG's LVs in the guest (the crash scenarios look at them too). */
export const guestLvs = (vg: string): Promise<LvRow[]> => lvs(runInGuest, vg);

// the crash scenarios' helpers
export { GiB, MiB, whileAttached } from '../../test/support/storage-probe.js';
