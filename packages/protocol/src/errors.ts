export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  'CONFLICT',
  'BACKEND_ERROR',
  'UNAUTHORIZED',
  'TIMEOUT',
  'UNAVAILABLE',
  'PROTOCOL',
  'UNSUPPORTED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** What an error looks like on the wire and in a record's `error` field. */
export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** Details of a failed storage command, carried by BackendError. */
export interface CommandFailure {
  command: string[];
  exitCode: number | null;
  stderrTail: string;
  [key: string]: unknown;
}

export class KindlingError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.details = details;
    this.name = new.target.name;
  }
  toInfo(): ErrorInfo {
    return Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

export class InvalidArgumentError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('INVALID_ARGUMENT', message, details);
  }
}
export class NotFoundError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('NOT_FOUND', message, details);
  }
}
export class ConflictError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('CONFLICT', message, details);
  }
}
export class BackendError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('BACKEND_ERROR', message, details);
  }
}
export class UnauthorizedError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('UNAUTHORIZED', message, details);
  }
}
export class TimeoutError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('TIMEOUT', message, details);
  }
}
export class UnavailableError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('UNAVAILABLE', message, details);
  }
}
export class ProtocolError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('PROTOCOL', message, details);
  }
}
/** The backend, as configured, lacks the feature the call needs (details.feature names it). */
export class UnsupportedError extends KindlingError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('UNSUPPORTED', message, details);
  }
}

const ERROR_CLASSES: Record<ErrorCode, new (message: string, details?: Record<string, unknown>) => KindlingError> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  CONFLICT: ConflictError,
  BACKEND_ERROR: BackendError,
  UNAUTHORIZED: UnauthorizedError,
  TIMEOUT: TimeoutError,
  UNAVAILABLE: UnavailableError,
  PROTOCOL: ProtocolError,
  UNSUPPORTED: UnsupportedError,
};

/** Rebuilds the typed error class from its wire form; an unknown code becomes a PROTOCOL error. */
export function errorFromInfo(info: ErrorInfo): KindlingError {
  const cls = ERROR_CLASSES[info.code];
  if (!cls) return new ProtocolError(`unknown error code ${String(info.code)}: ${info.message}`, info.details);
  return new cls(info.message, info.details ?? {});
}

/** Any thrown value as wire error info; non-Kindling errors are reported without internals leaking as codes. */
export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof KindlingError) return err.toInfo();
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'BACKEND_ERROR', message };
}
