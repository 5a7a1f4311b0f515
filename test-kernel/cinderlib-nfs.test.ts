// cinderlib's functional suite and the seed's snapshot snippets (test/support/cinderlib-suite.ts, the host's
// too) on the guest's `suite-nfs` backend; one file per backend so the backends run side by side, each on
// storage no other scenario file touches (the suite asserts its totals).
import { cinderlibSuite, seedSuite } from '../test/support/cinderlib-suite.js';
import { guestProbe } from './support/data.js';

cinderlibSuite(guestProbe('suite-nfs'));
seedSuite(guestProbe('suite-nfs'));
