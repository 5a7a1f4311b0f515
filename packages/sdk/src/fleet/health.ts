import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isObject, messageOf, type DriverName } from '@kindling/protocol';
import { rpcUrl, type TlsOptions } from '../options.js';

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

/** One GET with the client's TLS options (node's fetch takes none): status and body text, within `timeoutMs`. */
function get(url: string, tls: TlsOptions, timeoutMs: number): Promise<{ status: number; body: string }> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Reads an agent's `/readyz`, with the same TLS options as its RPC link. Rejects (with a message naming
 * the URL) when the agent cannot be reached in `timeoutMs` or answers with something that is not a
 * readiness report; a 503 with a report is an answer, not a failure.
 */
export async function probeReadyz(agentUrl: string, timeoutMs: number, tls: TlsOptions = {}): Promise<Readyz> {
  const url = readyzUrl(agentUrl);
  let response: { status: number; body: string };
  try {
    response = await get(url, tls, timeoutMs);
  } catch (err) {
    const why = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? `no answer within ${timeoutMs} ms` : messageOf(err);
    throw new Error(`GET ${url}: ${why}`);
  }
  let body: unknown = null;
  try {
    body = JSON.parse(response.body);
  } catch {
    // not JSON: reported below
  }
  if (!isReadyz(body)) throw new Error(`GET ${url}: HTTP ${response.status} without a readiness report`);
  return body;
}
