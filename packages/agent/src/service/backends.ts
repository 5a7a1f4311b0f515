import { BackendError, NotFoundError, messageOf, type BackendInfo, type BackendStats } from '@kindling/protocol';
import type { Driver, Readiness } from '../drivers/driver.js';
import type { IndexStore } from '../index/store.js';
import type { EventBus } from './events.js';
import { findingWarnings, type Findings } from './findings.js';
import { log } from '../log.js';

export interface BackendReadiness extends Readiness, BackendInfo {
  /** What the last scan of storage found besides volumes and snapshots (absent before any scan). */
  findings?: { leftovers: number; strays: number; missingFromIndex?: number; missingFromStorage?: number };
}

interface Entry {
  driver: Driver;
  /**
   * Why the backend takes no operations: not started yet, or why start() or the recovery after it
   * failed (a retry of both follows). Null once started and recovered.
   */
  startError: string | null;
  /** The next start attempt of a backend that failed, and the delay before the one after it. */
  retry: { timer: NodeJS.Timeout | null; delayMs: number };
  /** The last readiness answer, and the check under way (at most one per backend: a hung share pins one thread, not all). */
  ready: { at: number; value: Readiness } | null;
  checking: Promise<Readiness> | null;
  /** Whether the last check found it ready (undefined before the first): a change is logged. */
  wasReady: boolean | undefined;
  /** The capacity last pushed, to push a periodic refresh only when it changed. */
  lastCapacity: string | null;
}

export interface BackendTiming {
  /** First delay before a failed start is tried again; doubles up to `maxRetryMs`. */
  firstRetryMs: number;
  maxRetryMs: number;
  /** How long a readiness answer is served from cache. */
  readinessTtlMs: number;
  /** A readiness check taking longer reads as not ready (an NFS server that stopped answering). */
  readinessTimeoutMs: number;
  /** How often every started backend's readiness and capacity are read afresh. */
  refreshMs: number;
}

/** What runs once a backend has started and before it takes operations: recovery of its interrupted ones. */
export type OnStarted = (driver: Driver) => Promise<void>;

/** The index key saying a backend's storage must be scanned at the next start, clean stop or not. */
const scanOwedKey = (backend: string) => `scanOwed:${backend}`;

export const DEFAULT_TIMING: BackendTiming = { firstRetryMs: 1000, maxRetryMs: 60_000, readinessTtlMs: 5000, readinessTimeoutMs: 5000, refreshMs: 60_000 };

/** The configured backends, their drivers and readiness, and the stats the index completes. */
export class Backends {
  private readonly entries = new Map<string, Entry>();
  private readonly pendingCapacity = new Set<string>();
  private readonly found = new Map<string, Findings>();

  private closed = false;
  private onStarted: OnStarted | undefined;
  private refreshTimer: NodeJS.Timeout | null = null;
  private refreshing = false;

  constructor(
    drivers: Driver[],
    private readonly index: IndexStore,
    private readonly events: EventBus,
    private readonly timing: BackendTiming = DEFAULT_TIMING,
  ) {
    for (const driver of drivers) {
      const retry = { timer: null, delayMs: timing.firstRetryMs };
      this.entries.set(driver.name, { driver, startError: 'not started yet', retry, ready: null, checking: null, wasReady: undefined, lastCapacity: null });
    }
  }

  /**
   * Starts every driver, each then recovered by `onStarted` before it takes operations; one that fails
   * stays listed, not ready, with its reason (never fatal to the agent), and is tried again with backoff
   * until its storage comes (a slow NFS server, a VG assembled late): its records wait for it untouched.
   */
  async start(onStarted?: OnStarted): Promise<void> {
    this.onStarted = onStarted;
    this.refreshTimer = setInterval(() => void this.refresh(), this.timing.refreshMs);
    this.refreshTimer.unref();
    await Promise.all([...this.entries.values()].map((entry) => this.startOne(entry)));
  }

  private async startOne(entry: Entry): Promise<void> {
    try {
      await entry.driver.start();
      await this.onStarted?.(entry.driver);
      entry.startError = null;
      entry.ready = null;
    } catch (err) {
      entry.startError = messageOf(err);
      if (this.closed) return;
      entry.retry.timer = setTimeout(() => {
        entry.retry.timer = null;
        void this.startOne(entry);
      }, entry.retry.delayMs);
      entry.retry.timer.unref();
      entry.retry.delayMs = Math.min(entry.retry.delayMs * 2, this.timing.maxRetryMs);
    }
  }

  /** Stops the start retries, and what the drivers keep running. */
  close(): void {
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const { retry } of this.entries.values()) if (retry.timer) clearTimeout(retry.timer);
    for (const { driver } of this.entries.values()) driver.close?.();
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

  /** Each backend's readiness, from a cached check at most `readinessTtlMs` old; never waits past the check timeout. */
  async readiness(): Promise<BackendReadiness[]> {
    return Promise.all(
      [...this.entries.values()].map(async (entry): Promise<BackendReadiness> => {
        const { driver, startError } = entry;
        const info = { name: driver.name, driver: driver.driver };
        if (startError !== null) return { ...info, ready: false, reason: startError };
        const readiness = await this.checked(entry);
        const found = this.found.get(driver.name);
        if (!found) return { ...info, ...readiness };
        const warnings = [...(readiness.warnings ?? []), ...findingWarnings(found)];
        return {
          ...info,
          ...readiness,
          ...(warnings.length > 0 ? { warnings } : {}),
          findings: {
            leftovers: found.leftovers.length,
            strays: found.strays.length,
            missingFromIndex: found.missingFromIndex ?? 0,
            missingFromStorage: found.missingFromStorage ?? 0,
          },
        };
      }),
    );
  }

  private async checked(entry: Entry): Promise<Readiness> {
    const now = Date.now();
    if (entry.ready && now - entry.ready.at < this.timing.readinessTtlMs) return entry.ready.value;
    entry.checking ??= entry.driver
      .readiness()
      .catch((err: unknown): Readiness => ({ ready: false, reason: messageOf(err) }))
      .then((value) => {
        entry.ready = { at: Date.now(), value };
        entry.checking = null;
        this.noteReadiness(entry, value);
        return value;
      });
    const timeoutMs = this.timing.readinessTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Readiness>((resolve) => {
      timer = setTimeout(() => resolve({ ready: false, reason: `its readiness check did not answer in ${timeoutMs} ms` }), timeoutMs);
    });
    try {
      return await Promise.race([entry.checking, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A share or VG that went away is a warning; its return is news too, and its capacity is pushed afresh. */
  private noteReadiness(entry: Entry, value: Readiness): void {
    const was = entry.wasReady;
    entry.wasReady = value.ready;
    const backend = entry.driver.name;
    if (was === true && !value.ready) log.warn({ backend }, `backend ${backend} is not ready: ${value.reason ?? 'unknown'}`);
    if (was === false && value.ready) {
      log.info({ backend }, `backend ${backend} is ready again`);
      void this.pushCapacity(backend, true, false);
    }
  }

  /** The periodic refresh: each started backend's readiness checked afresh, and its capacity read again. */
  private async refresh(): Promise<void> {
    if (this.refreshing || this.closed) return;
    this.refreshing = true;
    try {
      await Promise.all(
        [...this.entries.values()]
          .filter((entry) => entry.startError === null)
          .map(async (entry) => {
            entry.ready = null;
            if ((await this.checked(entry)).ready) await this.pushCapacity(entry.driver.name, true, true);
          }),
      );
    } finally {
      this.refreshing = false;
    }
  }

  /** Publishes the backend's capacity (read afresh when `refresh`); `ifChanged` skips a figure already pushed. */
  private async pushCapacity(name: string, refresh: boolean, ifChanged: boolean): Promise<void> {
    const entry = this.entry(name);
    // Capacity pushes are advisory; each operation's own reply already carried its outcome.
    const resource = await this.stats(name, refresh).catch(() => null);
    if (!resource) return;
    const key = JSON.stringify(resource);
    if (ifChanged && key === entry.lastCapacity) return;
    entry.lastCapacity = key;
    this.events.publish({ event: 'capacity', resource });
  }

  /** Records durably that the backend's storage may hold a leftover only a scan finds (a cleanup failed, or may have). */
  async oweScan(name: string): Promise<void> {
    await this.index.setMeta(scanOwedKey(name), true);
  }

  async scanOwed(name: string): Promise<boolean> {
    return (await this.index.getMeta(scanOwedKey(name))) === true;
  }

  /**
   * At a clean stop: a started backend that is not ready or warns of anything (a driver reports there a
   * cleanup it could not finish during an operation that succeeded) is scanned at the next start.
   */
  async oweScansWhereAmiss(): Promise<void> {
    const started = [...this.entries.values()].filter((entry) => entry.startError === null);
    await Promise.all(
      started.map(async (entry) => {
        entry.ready = null;
        const readiness = await this.checked(entry);
        if (!readiness.ready || (readiness.warnings ?? []).length > 0) await this.oweScan(entry.driver.name);
      }),
    );
  }

  /** A scan found every leftover of the backend removed. */
  async scanPaid(name: string): Promise<void> {
    await this.index.setMeta(scanOwedKey(name), false);
  }

  /** Records what a scan of the backend found: lists left out keep their previous value, a scan error does not. */
  noteFindings(name: string, findings: Partial<Findings>): void {
    const previous = this.found.get(name);
    this.found.set(name, { leftovers: previous?.leftovers ?? [], strays: previous?.strays ?? [], ...findings });
  }

  async stats(name: string, refresh: boolean): Promise<BackendStats> {
    const driver = this.usable(name);
    const base = await driver.stats(refresh);
    const { volumes: totalVolumes, snapshots: totalSnapshots } = this.index.countOf(name);
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
      void this.pushCapacity(name, false, false);
    });
  }
}
