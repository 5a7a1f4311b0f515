import { isObject, type DriverName } from '@kindling/protocol';
import { rpcUrl } from '../transport.js';

/** One backend as the agent's `/readyz` reports it. */
export interface BackendReadiness {
  name: string;
  driver: DriverName;
  ready: boolean;
  /** Why not ready (VG missing, share not writable). */
  reason?: string;
  /** Ready, but heading for trouble. */
  warnings?: string[];
}

/** The body of `GET /readyz` (200 when every backend is ready, 503 otherwise). */
export interface Readyz {
  ready: boolean;
  hostId: string;
  backends: BackendReadiness[];
}

/** `ws://h:p/rpc` → `http://h:p/readyz`: the agent serves HTTP next to its WebSocket, on the same port. */
export function readyzUrl(agentUrl: string): string {
  const url = new URL('readyz', rpcUrl(agentUrl));
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  return url.toString();
}

function isReadiness(x: unknown): x is BackendReadiness {
  return isObject(x) && typeof x.name === 'string' && typeof x.driver === 'string' && typeof x.ready === 'boolean';
}

function isReadyz(x: unknown): x is Readyz {
  return isObject(x) && typeof x.ready === 'boolean' && typeof x.hostId === 'string' && Array.isArray(x.backends) && x.backends.every(isReadiness);
}

/**
 * Reads an agent's `/readyz`. Rejects (with a message naming the URL) when the agent cannot be
 * reached in `timeoutMs` or answers with something that is not a readiness report; a 503 with a
 * report is an answer, not a failure.
 */
export async function probeReadyz(agentUrl: string, timeoutMs: number): Promise<Readyz> {
  const url = readyzUrl(agentUrl);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const why = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : describe(err);
    throw new Error(`GET ${url}: ${why}`);
  }
  const body: unknown = await response.json().catch(() => null);
  if (!isReadyz(body)) throw new Error(`GET ${url}: HTTP ${response.status} without a readiness report`);
  return body;
}

/** fetch hides the socket error (ECONNREFUSED, ...) in `cause`; that is the useful part. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}
