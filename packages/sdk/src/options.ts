import { readFileSync } from 'node:fs';
import { InvalidArgumentError, messageOf } from '@kindling/protocol';

export interface ReconnectOptions {
  /** Delay before the first redial after a drop; doubles per failed attempt. Default 100. */
  initialDelayMs?: number;
  /** Ceiling of the redial delay. Default 5000. */
  maxDelayMs?: number;
  /**
   * How long a call waits for the link to come back: one made while disconnected, and one in flight when
   * the link dropped (sent again, with the same requestId, once the agent is back). Default 2000.
   * A redial refused for good (a refused or missing token, a Host the agent does not answer to) ends the
   * wait at once with that error.
   */
  waitMs?: number;
}

/**
 * Certificates for `wss://` (and the `https://` health probes) with a private CA or mutual TLS (PEM
 * text or bytes). Every request an Agent or a Fleet makes to an agent uses them.
 */
export interface TlsOptions {
  /** CA bundle the agent's certificate must chain to. */
  ca?: string | Buffer;
  /** This client's certificate and key, for an agent that asks for one (`tls.clientCa`). */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface ConnectOptions {
  /**
   * Sent as `Authorization: Bearer TOKEN` on the upgrade request. Default: `KINDLING_TOKEN`, else the
   * contents of the file `KINDLING_TOKEN_FILE` names.
   */
  token?: string;
  tls?: TlsOptions;
  /** Deadline of the connect: the upgrade, then the hello. Default `timeoutMs`, at most 10000. */
  connectTimeoutMs?: number;
  /** Deadline of each read (gets, lists, stats, kv.get: every op that changes nothing). Default `timeoutMs`, at most 30000. */
  readTimeoutMs?: number;
  /** Deadline of each short change (attach, snapshot and volume create, kv.set, ...). Default 120000. */
  timeoutMs?: number;
  /**
   * Deadline of the long operations, which copy or zero data (clone, volume from snapshot, revert, extend,
   * deletes). Default none while keepalive watches the link, as they take as long as the data is big;
   * `timeoutMs` when keepalive is off. 0: none.
   */
  longTimeoutMs?: number;
  /** Redial in the background after the socket drops. Default on; `false` makes calls fail at once while down. */
  reconnect?: boolean | ReconnectOptions;
  /**
   * A ping this often; a link that has not answered the previous one is dropped (and redialled), so a
   * silently dead agent or network is noticed without waiting for a call to time out. Default 15000; 0: off.
   */
  keepaliveMs?: number;
  /** How often a call refused with BUSY is sent again, after the agent's `retryAfterMs`, before the BusyError reaches the caller. Default 3. */
  busyRetries?: number;
  /**
   * Which pushes the agent sends: `'everything'` (default) or `'held'`, only those about volumes this
   * Agent holds (read, listed, created through it; `load()`ed ones once read), with their snapshots and
   * connections, and capacity.
   */
  follow?: 'everything' | 'held';
}

/** Per call. */
export interface RequestOptions {
  /** The request id to send; default a fresh UUID for a mutating op (MUTATING_OPS), none for a read. */
  requestId?: string;
  /** This call's deadline; default by op (see ConnectOptions). 0: none. */
  timeoutMs?: number;
}

/** The token the environment gives: `KINDLING_TOKEN`, else the file `KINDLING_TOKEN_FILE` names. */
export function tokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.KINDLING_TOKEN) return env.KINDLING_TOKEN;
  const file = env.KINDLING_TOKEN_FILE;
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new InvalidArgumentError(`cannot read the token file KINDLING_TOKEN_FILE=${file}: ${messageOf(err)}`, { file });
  }
}

/** The agent's RPC endpoint for a user-given URL: `/rpc` is added when the URL has no path. */
export function rpcUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${url}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new InvalidArgumentError(`an agent URL is ws:// or wss://, not ${parsed.protocol}//`, { url });
  }
  if (parsed.pathname === '' || parsed.pathname === '/') parsed.pathname = '/rpc';
  return parsed.toString();
}
