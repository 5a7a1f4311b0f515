import { messageOf } from '@kindling/protocol';
import type { AgentConfig } from './config.js';
import { EXIT } from './exit.js';
import { log } from './log.js';
import { openServices } from './services.js';
import { reconcile } from './service/reconcile.js';

/**
 * `kindling-agent reindex`: recovers interrupted operations and removes their leftovers (as every start
 * does), rebuilds the index from storage, and prints what it found; 0 when nothing differed.
 */
export async function reindex(config: AgentConfig): Promise<number> {
  let services;
  try {
    services = await openServices(config);
  } catch (err) {
    log.error(`reindex: cannot open the index: ${messageOf(err)}`);
    return EXIT.INDEX;
  }
  try {
    const { recovery } = services;
    const reports = await reconcile(services, true);
    console.log(JSON.stringify({ event: 'reindex', recovery, backends: reports }, null, 2));
    const recovered = [recovery.resolved, recovery.removed, recovery.failed, recovery.unscanned].every((l) => l.length === 0);
    const clean = reports.every(
      (r) =>
        !r.error &&
        [r.missingFromIndex, r.missingFromStorage, r.leftovers, r.strays].every((l) => l.length === 0),
    );
    return recovered && clean ? EXIT.OK : EXIT.FINDINGS;
  } finally {
    await services.close();
  }
}
