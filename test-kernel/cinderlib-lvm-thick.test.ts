// cinderlib's functional suite and the seed's snapshot snippets (test/support/cinderlib-suite.ts, the host's
// too) on the guest's `lvm-thick` backend, then the thick revert's extent check; one file per backend so the
// backends run side by side.
import { cinderlibSuite, seedSuite } from '../test/support/cinderlib-suite.js';
import { guestProbe } from './support/data.js';
import { thickRevertSuite } from './support/thick-revert.js';

cinderlibSuite(guestProbe('lvm-thick'));
seedSuite(guestProbe('lvm-thick'));
thickRevertSuite();
