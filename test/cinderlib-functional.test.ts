// cinderlib's functional suite and the seed's snapshot snippets (test/support/cinderlib-suite.ts) on every
// backend this host runs for real: the NFS driver on a local-folder share, with qcow2 and with raw volume
// files, each against its own agent process. The real-kernel lane runs the same file on LVM and mounted NFS.
import { cinderlibSuite, seedSuite } from './support/cinderlib-suite.js';
import { hostNfsProbe } from './support/host-probe.js';

for (const format of ['qcow2', 'raw'] as const) {
  cinderlibSuite(hostNfsProbe(format));
  seedSuite(hostNfsProbe(format));
}
