import { access, readFile, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { isIPv4 } from 'node:net';
import * as v from 'valibot';
import { messageOf } from '@kindling/protocol';
import { describeIssues } from './config-errors.js';
import { EXIT, StartupError } from './exit.js';

const name = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, _ . -'));
const percentage = v.pipe(v.number(), v.minValue(0), v.maxValue(100));
const ratio = v.pipe(v.number(), v.minValue(1));

const lvmBackend = v.strictObject({
  name,
  driver: v.literal('lvm'),
  volumeGroup: v.pipe(v.string(), v.regex(/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$/, 'is not a VG name')),
  lvmType: v.optional(v.picklist(['default', 'thin', 'auto']), 'default'),
  thinPool: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$/, 'is not an LV name'))),
  lvmConfFile: v.optional(v.string()),
  /**
   * lvm2 commands through one long-lived `lvm` shell per backend (on unless false): no process start per
   * command. Off runs each as its own process, as before (a host whose lvm2 cannot keep a shell).
   */
  lvmShell: v.optional(v.boolean()),
  /** cinder's volume_clear default: a deleted thick volume is zeroed so the next one cannot read its data. */
  volumeClear: v.optional(v.picklist(['zero', 'none']), 'zero'),
  /** Slowest zeroing (MiB/s) before its dd is killed (then reported and retried at start); 0: never killed. */
  volumeClearMinMiBps: v.optional(v.pipe(v.number(), v.minValue(0)), 8),
  reservedPercentage: v.optional(percentage, 0),
  maxOverSubscriptionRatio: v.optional(ratio, 20),
  /** Address that iSCSI connections point other hosts at. */
  targetIp: v.optional(v.string()),
  targetPort: v.optional(v.pipe(v.number(), v.integer()), 3260),
});

const nfsBackend = v.strictObject({
  name,
  driver: v.literal('nfs'),
  shares: v.pipe(v.array(v.string()), v.minLength(1, 'needs at least one share')),
  mountPointBase: v.optional(v.string(), './var/mnt'),
  mountOptions: v.optional(v.string()),
  format: v.optional(v.picklist(['raw', 'qcow2']), 'qcow2'),
  sparse: v.optional(v.boolean(), true),
  snapshotSupport: v.optional(v.boolean(), true),
  reservedPercentage: v.optional(percentage, 0),
  maxOverSubscriptionRatio: v.optional(ratio, 1),
  /**
   * Whether a local-folder share that does not exist is created. `false` refuses such a share at start:
   * a mistyped path would otherwise put volumes on the wrong filesystem. Unset still creates, as before
   * (the test fixtures rely on it); the example config sets false.
   */
  createShares: v.optional(v.boolean()),
});

export const configSchema = v.strictObject({
  listen: v.optional(
    v.strictObject({
      host: v.optional(v.string(), '127.0.0.1'),
      port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)), 8600),
    }),
    {},
  ),
  dataDir: v.optional(v.string(), './var/kindling'),
  token: v.optional(v.pipe(v.string(), v.minLength(16, 'must be at least 16 characters'))),
  /** Stable host identity; generated once and kept in the data dir when absent. */
  hostId: v.optional(v.string()),
  /** Tokens that may read (/metrics, /readyz, /v1, read-only RPC ops) but change nothing. */
  readTokens: v.optional(v.array(v.pipe(v.string(), v.minLength(16, 'must be at least 16 characters'))), []),
  tls: v.optional(
    v.strictObject({
      cert: v.string(),
      key: v.string(),
      /** CA bundle that client certificates must chain to: with it, clients must present one (mutual TLS). */
      clientCa: v.optional(v.string()),
    }),
  ),
  /** Serve without TLS beyond loopback: tokens and data then travel in clear text. Off by default. */
  allowPlaintext: v.optional(v.boolean(), false),
  /** Host names clients use to reach this agent, besides loopback, IP literals and the machine's name. */
  allowedHosts: v.optional(v.array(v.string()), []),
  /** Web origins whose pages may call the agent; browsers from anywhere else are refused. */
  allowedOrigins: v.optional(v.array(v.string()), []),
  /** Bounds on what one client can make the agent hold. */
  limits: v.optional(
    v.strictObject({
      requestsInFlight: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 256),
      unsentBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(65536)), 16 * 1024 * 1024),
      /** Storage commands running at once (the rest wait): bounds descriptors and processes. */
      commands: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 64),
      /** Long data copies running at once, within `commands`. */
      copies: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 4),
    }),
    {},
  ),
  /**
   * How often each backend's readiness and capacity are read again (one statfs per share, one lvm report
   * per VG), so a change made outside Kindling reaches stats, placement and the capacity event.
   */
  capacityRefreshSeconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 60),
  backends: v.pipe(
    v.array(v.variant('driver', [lvmBackend, nfsBackend])),
    v.check((bs) => new Set(bs.map((b) => b.name)).size === bs.length, 'backend names must be unique'),
  ),
});

export type AgentConfig = v.InferOutput<typeof configSchema>;
export type LvmBackendConfig = v.InferOutput<typeof lvmBackend>;
export type NfsBackendConfig = v.InferOutput<typeof nfsBackend>;
export type BackendConfig = LvmBackendConfig | NfsBackendConfig;

export class ConfigError extends StartupError {
  /** Each mistake on its own, for check-config's list; the message joins them on one line for a log. */
  constructor(
    message: string,
    readonly problems: readonly string[] = [message],
  ) {
    super(message, EXIT.CONFIG);
  }
}

/** The embedded default: LevelDB and a local-folder share under ./var, made on first start. */
export const DEFAULT_CONFIG = {
  listen: { host: '127.0.0.1', port: 8600 },
  dataDir: './var/kindling',
  backends: [{ name: 'nfs', driver: 'nfs', shares: ['./var/share'], format: 'qcow2', createShares: true }],
};

/**
 * Loopback exactly: `localhost`, `::1`, or an IPv4 literal in 127.0.0.0/8. A name that merely starts
 * with `127.` (`127.attacker.test`) resolves wherever its owner likes: it waives neither TLS nor the
 * Host check.
 */
export const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));

/** Validates a raw config object; relative paths are resolved against `baseDir`. */
export function parseConfig(raw: unknown, baseDir: string): AgentConfig {
  const result = v.safeParse(configSchema, raw);
  if (!result.success) {
    const lines = describeIssues(configSchema, result.issues);
    // One line, so a start-up failure stays one log line.
    throw new ConfigError(`invalid config: ${lines.join('; ')}`, lines.map((l) => `config: ${l}`));
  }
  const config = result.output;
  if (!config.token && !isLoopback(config.listen.host)) {
    throw new ConfigError(`a token is required when listening on ${config.listen.host} (not loopback)`);
  }
  if (!config.tls && !config.allowPlaintext && !isLoopback(config.listen.host)) {
    throw new ConfigError(
      `TLS (tls.cert, tls.key) is required when listening on ${config.listen.host} (not loopback): the token would ` +
        'travel in clear text; set allowPlaintext: true to waive this on a trusted network',
    );
  }
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  config.dataDir = abs(config.dataDir);
  if (config.tls) {
    config.tls.cert = abs(config.tls.cert);
    config.tls.key = abs(config.tls.key);
    if (config.tls.clientCa) config.tls.clientCa = abs(config.tls.clientCa);
  }
  for (const b of config.backends) {
    if (b.driver === 'nfs') {
      b.mountPointBase = abs(b.mountPointBase);
      // host:/path stays as is (mounted by the agent); a local folder is resolved to an absolute path.
      b.shares = b.shares.map((s) => (isLocalShare(s) ? abs(s) : s));
    } else if (b.lvmConfFile) {
      b.lvmConfFile = abs(b.lvmConfFile);
    }
  }
  return config;
}

/** `host:/export` is mounted by the agent; anything else is a local folder. */
export const isLocalShare = (share: string): boolean => !/^[^/]+:\//.test(share);

/**
 * Refuses local-folder shares that are missing (unless the backend says `createShares`) or not folders,
 * before any backend starts: the NFS driver would otherwise create a mistyped path and report ready.
 */
export async function checkLocalShares(config: AgentConfig): Promise<void> {
  for (const b of config.backends) {
    if (b.driver !== 'nfs') continue;
    for (const share of b.shares.filter(isLocalShare)) {
      const problem = await localShareProblem(b, share);
      if (problem) throw new ConfigError(problem);
    }
  }
}

/** Why a local share cannot serve as configured (missing without createShares, or not a folder), if it cannot. */
export async function localShareProblem(b: NfsBackendConfig, share: string): Promise<string | undefined> {
  const found = await stat(share).catch(() => null);
  if (found && !found.isDirectory()) return `backend ${b.name}: share ${share} is not a directory`;
  if (!found && !b.createShares) return `backend ${b.name}: share ${share} does not exist (set createShares: true to have it created)`;
  return undefined;
}

/** TLS files are read when serving starts: a missing one is a config error, found before the index opens. */
export async function checkTlsFiles(config: AgentConfig): Promise<void> {
  const files = config.tls ? Object.entries(config.tls).filter((e): e is [string, string] => e[1] !== undefined) : [];
  for (const [key, path] of files) {
    await access(path, constants.R_OK).catch((err: unknown) => {
      throw new ConfigError(`cannot read tls.${key} ${path}: ${messageOf(err)}`);
    });
  }
}

export async function loadConfigFile(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new ConfigError(`cannot read config file ${path}: ${messageOf(err)}`);
  });
  try {
    // yaml (~260 KB of code) is loaded only for a YAML file: a JSON config starts the agent without it.
    return path.endsWith('.json') ? JSON.parse(text) : (await import('yaml')).parse(text);
  } catch (err) {
    throw new ConfigError(`cannot parse ${path}: ${(err as Error).message}`);
  }
}
