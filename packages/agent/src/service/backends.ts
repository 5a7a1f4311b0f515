import { BackendError, NotFoundError, type BackendInfo, type BackendStats } from '@kindling/protocol';
import type { Driver, Readiness } from '../drivers/driver.js';
import type { IndexStore } from '../index/store.js';
import type { EventBus } from './events.js';
import { findingWarnings, type Findings } from './findings.js';

export interface BackendReadiness extends Readiness, BackendInfo {
  /** What the last scan of storage found besides volumes and snapshots (absent before any scan). */
  findings?: { leftovers: number; strays: number };
}

interface Entry {
  driver: Driver;
  /** Why start() failed; such a backend takes no operations until the agent restarts. */
  startError: string | null;
}

/** The configured backends, their drivers and readiness, and the stats the index completes. */
export class Backends {
  private readonly entries = new Map<string, Entry>();
  private readonly pendingCapacity = new Set<string>();
  private readonly found = new Map<string, Findings>();

  constructor(
    drivers: Driver[],
    private readonly index: IndexStore,
    private readonly events: EventBus,
  ) {
    for (const driver of drivers) this.entries.set(driver.name, { driver, startError: null });
  }

  /** Starts every driver; one that fails stays listed, not ready, with its reason (never fatal to the agent). */
  async start(): Promise<void> {
    await Promise.all(
      [...this.entries.values()].map(async (entry) => {
        try {
          await entry.driver.start();
        } catch (err) {
          entry.startError = err instanceof Error ? err.message : String(err);
        }
      }),
    );
  }

  list(): BackendInfo[] {
    return [...this.entries.values()].map(({ driver }) => ({ name: driver.name, driver: driver.driver }));
  }

  drivers(): Driver[] {
    return [...this.entries.values()].filter((e) => e.startError === null).map((e) => e.driver);
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (!entry) throw new NotFoundError(`no backend named ${name}`, { backend: name, backends: [...this.entries.keys()] });
    return entry;
  }

  get(name: string): Driver {
    return this.entry(name).driver;
  }

  /** The driver, if it started; operations on a backend that did not start are refused with the reason. */
  usable(name: string): Driver {
    const entry = this.entry(name);
    if (entry.startError !== null) {
      throw new BackendError(`backend ${name} is not ready: ${entry.startError}`, { backend: name, reason: entry.startError });
    }
    return entry.driver;
  }

  async readiness(): Promise<BackendReadiness[]> {
    return Promise.all(
      [...this.entries.values()].map(async ({ driver, startError }): Promise<BackendReadiness> => {
        const info = { name: driver.name, driver: driver.driver };
        if (startError !== null) return { ...info, ready: false, reason: startError };
        let readiness: Readiness;
        try {
          readiness = await driver.readiness();
        } catch (err) {
          return { ...info, ready: false, reason: err instanceof Error ? err.message : String(err) };
        }
        const found = this.found.get(driver.name);
        if (!found) return { ...info, ...readiness };
        const warnings = [...(readiness.warnings ?? []), ...findingWarnings(found)];
        return {
          ...info,
          ...readiness,
          ...(warnings.length > 0 ? { warnings } : {}),
          findings: { leftovers: found.leftovers.length, strays: found.strays.length },
        };
      }),
    );
  }

  /** Records what a scan of the backend found: lists left out keep their previous value, a scan error does not. */
  noteFindings(name: string, findings: Partial<Findings>): void {
    const previous = this.found.get(name);
    this.found.set(name, { leftovers: previous?.leftovers ?? [], strays: previous?.strays ?? [], ...findings });
  }

  async stats(name: string, refresh: boolean): Promise<BackendStats> {
    const driver = this.usable(name);
    const base = await driver.stats(refresh);
    let totalVolumes = 0;
    let totalSnapshots = 0;
    for (const v of this.index.allVolumes()) if (v.backend === name) totalVolumes++;
    for (const s of this.index.allSnapshots()) if (s.backend === name) totalSnapshots++;
    return { backendName: name, driver: driver.driver, ...base, totalVolumes, totalSnapshots };
  }

  /**
   * Pushes the backend's capacity after a change, from the driver's cached figures, once the current
   * turn is over: the reply does not wait for it, and a burst of changes makes one push.
   */
  capacityChanged(name: string): void {
    if (this.pendingCapacity.has(name)) return;
    this.pendingCapacity.add(name);
    setImmediate(() => {
      this.pendingCapacity.delete(name);
      this.stats(name, false).then(
        (resource) => this.events.publish({ event: 'capacity', resource }),
        // Capacity pushes are advisory; each operation's own reply already carried its outcome.
        () => undefined,
      );
    });
  }
}
