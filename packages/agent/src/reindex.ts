import type { AgentConfig } from './config.js';
import { openServices } from './services.js';
import { reconcile } from './service/reconcile.js';

/** `kindling-agent reindex`: rebuilds the index from storage and prints what differed; 0 when consistent. */
export async function reindex(config: AgentConfig): Promise<number> {
  let services;
  try {
    services = await openServices(config);
  } catch (err) {
    console.error(`kindling-agent reindex: cannot open the index: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
  try {
    const reports = await reconcile(services, true);
    console.log(JSON.stringify({ event: 'reindex', backends: reports }, null, 2));
    const clean = reports.every((r) => !r.error && r.missingFromIndex.length === 0 && r.missingFromStorage.length === 0);
    return clean ? 0 : 1;
  } finally {
    await services.close();
  }
}
