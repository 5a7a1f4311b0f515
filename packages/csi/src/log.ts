import { status } from '@grpc/grpc-js';

// Names of fields that hold credentials: CSI's `secrets` maps, CHAP's auth_username/auth_password in
// a context, tokens; a StorageClass parameter naming a secret is redacted with them. CSI's paging
// tokens (`startingToken`, `nextToken`) are positions in a listing, kept for reading the log.
const SECRET_KEY = /secret|password|passwd|token|auth_username|chap/i;
const PAGING_TOKEN = /^(startingToken|nextToken)$/;

/** A copy of `value` with the value of every field whose name says it is a secret replaced. */
function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && !PAGING_TOKEN.test(k) ? '[redacted]' : redact(v)]));
}

/** One JSON log line for an RPC: method, duration, code (and details when it failed), the request without secrets. */
export function rpcLine(method: string, request: unknown, durationMs: number, error: { code: status; details: string } | null): string {
  return JSON.stringify({
    event: 'rpc',
    method,
    durationMs,
    code: status[error?.code ?? status.OK],
    ...(error ? { details: error.details } : {}),
    request: redact(request),
  });
}
