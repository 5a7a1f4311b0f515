import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import { createDriver } from './drivers/factory.js';
import type { Runner } from './exec/run.js';
import { run } from './exec/run.js';
import { IndexStore } from './index/store.js';
import { Backends, DEFAULT_TIMING } from './service/backends.js';
import { probeHost } from './service/capabilities.js';
import { ConnectionService } from './service/connections.js';
import type { ServiceContext } from './service/context.js';
import { EventBus } from './service/events.js';
import { KeyedLocks } from './locks.js';
import { addReport, nothingToRecover, recoverBackend, recoveryLines, type RecoveryReport } from './service/recovery.js';
import { log } from './log.js';
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

/** Whether a record of the backend was left in a transient status: an operation of it was cut short. */
const hasTransient = (index: IndexStore, backend: string): boolean =>
  index.volumesOfBackend(backend).some(isTransientVolume) ||
  [...index.allSnapshots()].some((s) => s.backend === backend && isTransientSnapshot(s));

export async function openServices(config: AgentConfig, runner: Runner = run): Promise<Services> {
  const index = await IndexStore.open(join(config.dataDir, 'index'));
  try {
    const stored = config.hostId ?? (await index.getMeta('hostId'));
    const hostId = typeof stored === 'string' ? stored : randomUUID();
    if (stored === undefined) await index.setMeta('hostId', hostId);
    const events = new EventBus();
    if (config.backends.some((b) => b.driver === 'lvm')) await probeHost();
    const backends = new Backends(
      config.backends.map((b) => createDriver(b, { run: runner, dataDir: config.dataDir })),
      index,
      events,
      { ...DEFAULT_TIMING, refreshMs: config.capacityRefreshSeconds * 1000 },
    );
    const ctx: ServiceContext = { index, backends, events, locks: new KeyedLocks(true), hostname: hostname() };
    const volumes = new VolumeService(ctx);
    const snapshots = new SnapshotService(ctx, volumes);
    const connections = new ConnectionService(ctx, volumes);
    // After a stop that let every operation finish, a backend has nothing to recover unless a cleanup
    // on it failed (or may have): the scans that find a crash's leftovers (seconds for tens of thousands
    // of volumes) are skipped. Any other start runs them.
    const cleanStop = (await index.getMeta('cleanStop')) === true;
    await index.setMeta('cleanStop', false);
    const recovery = nothingToRecover();
    let serving = false;
    // A backend not ready at start is recovered when it comes: its records wait for it, untouched.
    await backends.start(async (driver) => {
      if (cleanStop && !hasTransient(index, driver.name) && !(await backends.scanOwed(driver.name))) return;
      const report = await recoverBackend(ctx, driver);
      if (!serving) addReport(recovery, report);
      else for (const line of recoveryLines(report)) log.warn({ recovery: true, backend: driver.name }, line);
    });
    serving = true;
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
        if (clean) {
          await backends.oweScansWhereAmiss();
          await index.setMeta('cleanStop', true);
        }
        await index.close();
      },
    };
  } catch (err) {
    await index.close();
    throw err;
  }
}
