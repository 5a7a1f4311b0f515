// cinderlib's functional suite and the seed's snapshot snippets on the guest's `nfs` backend
// (test-kernel/support/scenarios.ts); one file per backend so the backends run side by side.
import { cinderlibSuite, seedSuite } from './support/scenarios.js';

cinderlibSuite('nfs');
seedSuite('nfs');
