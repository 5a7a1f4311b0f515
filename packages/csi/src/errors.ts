import { status } from '@grpc/grpc-js';
import { KindlingError, type ErrorCode } from '@kindling/sdk';

/** A refusal with the gRPC code the CSI specification names for it. */
export class CsiError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'CsiError';
  }
}

export const invalid = (message: string): CsiError => new CsiError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string): CsiError => new CsiError(status.NOT_FOUND, message);

/** A field the specification marks REQUIRED: its default ('') is INVALID_ARGUMENT. */
export function required(value: string, field: string): string {
  if (!value) throw invalid(`${field} is required`);
  return value;
}

/** Kindling's stable codes to the spec's: the CO's retry behaviour follows from these. */
const CODES: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  CONFLICT: status.FAILED_PRECONDITION,
  // The storage class asks for what its backend lacks as configured: the request must change.
  UNSUPPORTED: status.INVALID_ARGUMENT,
  BACKEND_ERROR: status.INTERNAL,
  INTERNAL: status.INTERNAL,
  // The driver's own token was refused: a deployment fault, not the caller's.
  UNAUTHORIZED: status.UNAUTHENTICATED,
  BUSY: status.RESOURCE_EXHAUSTED,
  TIMEOUT: status.DEADLINE_EXCEEDED,
  UNAVAILABLE: status.UNAVAILABLE,
  PROTOCOL: status.INTERNAL,
};

/** The gRPC status an error answers with; a storage failure carries its command and stderr tail. */
export function grpcStatusOf(err: unknown): { code: status; details: string } {
  if (err instanceof CsiError) return { code: err.code, details: err.message };
  if (err instanceof KindlingError) {
    const { command, stderrTail } = err.details as { command?: unknown; stderrTail?: unknown };
    const line = Array.isArray(command) ? command.join(' ') : String(command ?? '');
    const tail = err.code === 'BACKEND_ERROR' && typeof stderrTail === 'string' && stderrTail ? `: ${line}: ${stderrTail.trim()}` : '';
    return { code: CODES[err.code as ErrorCode] ?? status.INTERNAL, details: `${err.code}: ${err.message}${tail}` };
  }
  return { code: status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}
