// cinderlib's functional suite and the seed's snapshot snippets (test/support/cinderlib-suite.ts, the host's
// too) on the guest's `suite-thick` backend, then the thick revert's extent check; one file per backend so the
// backends run side by side, each on storage no other scenario file touches (the suite asserts its totals).
import { cinderlibSuite, seedSuite } from '../test/support/cinderlib-suite.js';
import { guestProbe } from './support/data.js';
import { thickRevertSuite } from './support/thick-revert.js';

cinderlibSuite(guestProbe('suite-thick'));
seedSuite(guestProbe('suite-thick'));
thickRevertSuite();
