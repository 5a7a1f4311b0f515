import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from './config.js';
import { messageOf } from '@kindling/protocol';
import type { Driver } from './drivers/driver.js';
import { loadDrivers } from './drivers/factory.js';
import type { Runner } from './exec/run.js';
import { run } from './exec/run.js';
import { IndexStore } from './index/store.js';
import { Backends, DEFAULT_TIMING } from './service/backends.js';
import { probeHost } from './service/capabilities.js';
import { ConnectionService } from './service/connections.js';
import type { ServiceContext } from './service/context.js';
import { EventBus } from './service/events.js';
import { GroupService } from './service/groups.js';
import { KeyedLocks } from './locks.js';
import { addReport, nothingToRecover, recoverAfterReady, recoverBackend, recoveryLines, type RecoveryReport } from './service/recovery.js';
import { log } from './log.js';
import { TRANSIENT_SNAPSHOT_STATUSES, TRANSIENT_VOLUME_STATUSES } from './service/status.js';
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
  groups: GroupService;
  recovery: RecoveryReport;
  /** What the check after ready found and removed (a start after a kill with nothing in flight); resolves when it is done. */
  recoveredAfterReady: Promise<RecoveryReport>;
  /** Starts the check after ready, opened with `deferCheck` (the agent calls it once it listens). */
  serving(): void;
  /** `clean`: every operation finished (none was ended by the stop), so the next start need not scan storage. */
  close(clean?: boolean): Promise<void>;
}

/** Whether a record of the backend was left in a transient status: an operation of it was cut short. */
const hasTransient = (index: IndexStore, backend: string): boolean =>
  index.volumesInStatus(backend, TRANSIENT_VOLUME_STATUSES).length > 0 ||
  index.snapshotsInStatus(backend, TRANSIENT_SNAPSHOT_STATUSES).length > 0;

const logRecovery = (backend: string, report: RecoveryReport): void => {
  for (const line of recoveryLines(report)) log.warn({ recovery: true, backend }, line);
};

/**
 * The after-ready recovery of each backend in turn, logged; never rejects (a failure is a finding).
 * Once `stop` aborts, each backend not yet checked owes its scan to the next start.
 */
async function recoverInBackground(ctx: ServiceContext, drivers: Driver[], asked: ReadonlySet<string>, stop: AbortSignal): Promise<RecoveryReport> {
  const all = nothingToRecover();
  // After ready: the caller serves first.
  await new Promise((resolve) => setImmediate(resolve));
  for (const driver of drivers) {
    try {
      const report = await recoverAfterReady(ctx, driver, asked, stop);
      logRecovery(driver.name, report);
      addReport(all, report);
      const counts = { removed: report.removed.length, notInIndex: report.missingFromIndex.length, notOnStorage: report.missingFromStorage.length };
      const end = stop.aborted ? 'ended by the stop' : 'done';
      log.info({ recovery: true, backend: driver.name, ...counts }, `storage check of ${driver.name} after ready ${end}`);
    } catch (err) {
      log.error({ recovery: true, backend: driver.name }, `recovery after ready failed: ${messageOf(err)}`);
    }
  }
  return all;
}

export interface OpenOptions {
  /**
   * The check after ready waits for `serving()`: reading all of storage while the server is still
   * starting would delay ready by as much (seconds at 100,000 volumes). Default: it starts at once.
   */
  deferCheck?: boolean;
}

export async function openServices(config: AgentConfig, runner: Runner = run, options: OpenOptions = {}): Promise<Services> {
  // The drivers' code compiles while LevelDB opens its files on the thread pool.
  const drivers = loadDrivers(config.backends);
  // Awaited once the index is open; should that fail first, a rejection here is not left unhandled.
  drivers.catch(() => undefined);
  const index = await IndexStore.open(join(config.dataDir, 'index'));
  try {
    const createDriver = await drivers;
    const stored = config.hostId ?? (await index.getMeta('hostId'));
    const hostId = typeof stored === 'string' ? stored : randomUUID();
    if (stored === undefined) await index.setMeta('hostId', hostId);
    const events = new EventBus();
    if (config.backends.some((b) => b.driver === 'lvm')) await probeHost();
    const backends = new Backends(
      config.backends.map((b) => createDriver(b, { run: runner, dataDir: config.dataDir, hostId })),
      index,
      events,
      { ...DEFAULT_TIMING, refreshMs: config.capacityRefreshSeconds * 1000 },
    );
    const ctx: ServiceContext = { index, backends, events, locks: new KeyedLocks(true), hostname: hostname() };
    const volumes = new VolumeService(ctx);
    const snapshots = new SnapshotService(ctx, volumes);
    const connections = new ConnectionService(ctx, volumes);
    const groups = new GroupService(ctx, volumes, snapshots);
    // Start is proportional to what was in flight. Storage is read before serving only for a backend
    // with records an operation left transient, or a scan owed (a cleanup failed, or may have). The
    // others are read once after ready, while clients are served (seconds for tens of thousands of
    // volumes): that one read compares storage with the index and, after a kill, finds what a crash can
    // have left with nothing in flight, leftovers.
    const cleanStop = (await index.getMeta('cleanStop')) === true;
    await index.setMeta('cleanStop', false);
    const recovery = nothingToRecover();
    const afterReady: Driver[] = [];
    const watch = ctx.locks.watch();
    let serving = false;
    // A backend not ready at start is recovered when it comes: its records wait for it, untouched.
    await backends.start(async (driver) => {
      const inFlight = hasTransient(index, driver.name) || (await backends.scanOwed(driver.name));
      if (!inFlight && !serving) {
        afterReady.push(driver);
        return;
      }
      if (!inFlight && cleanStop) return;
      const report = await recoverBackend(ctx, driver);
      if (!serving) addReport(recovery, report);
      else logRecovery(driver.name, report);
    });
    serving = true;
    // After the members' own records are settled: a group a kill cut short loses its partial members.
    for (const id of await groups.recover()) log.warn({ recovery: true, group: id }, `group snapshot ${id} was cut short: its member snapshots were removed`);
    const stopping = new AbortController();
    let startCheck!: () => void;
    const served = new Promise<void>((resolve) => (startCheck = resolve));
    if (!options.deferCheck) startCheck();
    const recoveredAfterReady = served.then(() => recoverInBackground(ctx, afterReady, watch.asked, stopping.signal)).finally(watch.stop);
    return {
      ...ctx,
      hostId,
      agentVersion: AGENT_VERSION,
      volumes,
      snapshots,
      connections,
      groups,
      recovery,
      recoveredAfterReady,
      serving: startCheck,
      close: async (clean = false) => {
        backends.close();
        // The check ends between files, owing its scan; it writes that to the index, which closes after it.
        // Meanwhile (a stop soon after a start finds it running) each backend's readiness is read afresh.
        stopping.abort();
        // Stopped before it served: the check, aborted, only marks every scan owed.
        startCheck();
        // A scan owed is synced before the marker that says nothing else is owed, which needs no sync.
        await Promise.all([recoveredAfterReady, clean && backends.oweScansWhereAmiss()]);
        await index.close(clean ? { cleanStop: true } : undefined);
      },
    };
  } catch (err) {
    await index.close();
    throw err;
  }
}
