import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import { createDriver } from './drivers/factory.js';
import type { Runner } from './exec/run.js';
import { run } from './exec/run.js';
import { IndexStore } from './index/store.js';
import { Backends } from './service/backends.js';
import { ConnectionService } from './service/connections.js';
import type { ServiceContext } from './service/context.js';
import { EventBus } from './service/events.js';
import { KeyedLocks } from './locks.js';
import { nothingToRecover, recoverTransient, type RecoveryReport } from './service/recovery.js';
import { isTransientSnapshot, isTransientVolume } from './service/status.js';
import { SnapshotService } from './service/snapshots.js';
import { VolumeService } from './service/volumes.js';
import { AGENT_VERSION } from './version.js';

/** The agent below the wire: index, drivers and the resource services, wired once. */
export interface Services extends ServiceContext {
  hostId: string;
  agentVersion: string;
  volumes: VolumeService;
  snapshots: SnapshotService;
  connections: ConnectionService;
  recovery: RecoveryReport;
  /** `clean`: every operation finished (none was ended by the stop), so the next start need not scan storage. */
  close(clean?: boolean): Promise<void>;
}

const hasTransient = (index: IndexStore): boolean =>
  [...index.allVolumes()].some(isTransientVolume) || [...index.allSnapshots()].some(isTransientSnapshot);

export async function openServices(config: AgentConfig, runner: Runner = run): Promise<Services> {
  const index = await IndexStore.open(join(config.dataDir, 'index'));
  try {
    const stored = config.hostId ?? (await index.getMeta('hostId'));
    const hostId = typeof stored === 'string' ? stored : randomUUID();
    if (stored === undefined) await index.setMeta('hostId', hostId);
    const events = new EventBus();
    const backends = new Backends(
      config.backends.map((b) => createDriver(b, { run: runner, dataDir: config.dataDir, hostId })),
      index,
      events,
    );
    await backends.start();
    const ctx: ServiceContext = { index, backends, events, locks: new KeyedLocks(true), hostname: hostname() };
    const volumes = new VolumeService(ctx);
    const snapshots = new SnapshotService(ctx, volumes);
    const connections = new ConnectionService(ctx, volumes);
    // After a stop that let every operation finish, nothing is left to recover: the scans that find a
    // crash's leftovers (seconds for tens of thousands of volumes) are skipped. Any other start runs them.
    const clean = (await index.getMeta('cleanStop')) === true && !hasTransient(index);
    await index.setMeta('cleanStop', false);
    const recovery = clean ? nothingToRecover() : await recoverTransient(ctx);
    return {
      ...ctx,
      hostId,
      agentVersion: AGENT_VERSION,
      volumes,
      snapshots,
      connections,
      recovery,
      close: async (clean = false) => {
        backends.close();
        if (clean) await index.setMeta('cleanStop', true);
        await index.close();
      },
    };
  } catch (err) {
    await index.close();
    throw err;
  }
}
