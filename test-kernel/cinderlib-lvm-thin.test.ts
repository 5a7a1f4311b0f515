// cinderlib's functional suite and the seed's snapshot snippets on the guest's `lvm-thin` backend
// (test-kernel/support/scenarios.ts); one file per backend so the backends run side by side.
import { cinderlibSuite, seedSuite } from './support/scenarios.js';

cinderlibSuite('lvm-thin', { iscsi: true });
seedSuite('lvm-thin');
