/**
 * Every error code, with the class that carries it. The classes are made from this one table, so a code
 * and its class cannot drift apart; `errorFromInfo` turns a wire error back into its class.
 */
const ERROR_TABLE = {
  INVALID_ARGUMENT: 'InvalidArgumentError',
  NOT_FOUND: 'NotFoundError',
  /** Refused in the current state; nothing changed. */
  CONFLICT: 'ConflictError',
  /** Storage failed: details carry the command line, exit code and stderr tail. */
  BACKEND_ERROR: 'BackendError',
  /** The agent failed, not the storage (a bug, the index): the cause is kept on the agent's side. */
  INTERNAL: 'InternalError',
  UNAUTHORIZED: 'UnauthorizedError',
  /** Too much in flight; retry after `details.retryAfterMs`. */
  BUSY: 'BusyError',
  TIMEOUT: 'TimeoutError',
  UNAVAILABLE: 'UnavailableError',
  PROTOCOL: 'ProtocolError',
  /** The backend, as configured, lacks the feature (`details.feature`). */
  UNSUPPORTED: 'UnsupportedError',
} as const;

export type ErrorCode = keyof typeof ERROR_TABLE;
export const ERROR_CODES = Object.keys(ERROR_TABLE) as ErrorCode[];

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
}

type Details = Record<string, unknown>;

export class KindlingError<C extends ErrorCode = ErrorCode, D extends Details = Details> extends Error {
  readonly code: C;
  readonly details: D;
  constructor(code: C, message: string, details: D = {} as D, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
    this.name = ERROR_TABLE[code];
  }
  toInfo(): ErrorInfo {
    return Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

type ErrorClass<C extends ErrorCode, D extends Details> = new (
  message: string,
  details?: D,
  options?: { cause?: unknown },
) => KindlingError<C, D>;

function errorClass<C extends ErrorCode, D extends Details = Details>(code: C): ErrorClass<C, D> {
  const cls = class extends KindlingError<C, D> {
    constructor(message: string, details?: D, options?: { cause?: unknown }) {
      super(code, message, details ?? ({} as D), options);
    }
  };
  Object.defineProperty(cls, 'name', { value: ERROR_TABLE[code] });
  return cls;
}

export const InvalidArgumentError = errorClass('INVALID_ARGUMENT');
export type InvalidArgumentError = InstanceType<typeof InvalidArgumentError>;
export const NotFoundError = errorClass('NOT_FOUND');
export type NotFoundError = InstanceType<typeof NotFoundError>;
export const ConflictError = errorClass('CONFLICT');
export type ConflictError = InstanceType<typeof ConflictError>;
export const BackendError = errorClass<'BACKEND_ERROR', Partial<CommandFailure> & Details>('BACKEND_ERROR');
export type BackendError = InstanceType<typeof BackendError>;
export const InternalError = errorClass('INTERNAL');
export type InternalError = InstanceType<typeof InternalError>;
export const UnauthorizedError = errorClass('UNAUTHORIZED');
export type UnauthorizedError = InstanceType<typeof UnauthorizedError>;
export const BusyError = errorClass<'BUSY', { retryAfterMs?: number } & Details>('BUSY');
export type BusyError = InstanceType<typeof BusyError>;
export const TimeoutError = errorClass('TIMEOUT');
export type TimeoutError = InstanceType<typeof TimeoutError>;
export const UnavailableError = errorClass('UNAVAILABLE');
export type UnavailableError = InstanceType<typeof UnavailableError>;
export const ProtocolError = errorClass('PROTOCOL');
export type ProtocolError = InstanceType<typeof ProtocolError>;
export const UnsupportedError = errorClass('UNSUPPORTED');
export type UnsupportedError = InstanceType<typeof UnsupportedError>;

const CLASSES: Record<ErrorCode, ErrorClass<ErrorCode, Details>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  CONFLICT: ConflictError,
  BACKEND_ERROR: BackendError,
  INTERNAL: InternalError,
  UNAUTHORIZED: UnauthorizedError,
  BUSY: BusyError,
  TIMEOUT: TimeoutError,
  UNAVAILABLE: UnavailableError,
  PROTOCOL: ProtocolError,
  UNSUPPORTED: UnsupportedError,
};

/** Rebuilds the typed error class from its wire form; an unknown code becomes a PROTOCOL error. */
export function errorFromInfo(info: ErrorInfo): KindlingError {
  const cls = Object.hasOwn(CLASSES, info.code) ? CLASSES[info.code] : undefined;
  if (!cls) return new ProtocolError(`unknown error code ${String(info.code)}: ${info.message}`, info.details);
  return new cls(info.message, info.details ?? {});
}

/** The message of anything thrown. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Any thrown value as a KindlingError: a foreign one (a TypeError, a LevelDB failure) is INTERNAL with
 * the original kept as `cause`, so it never reads like a storage failure.
 */
export function asKindlingError(err: unknown): KindlingError {
  return err instanceof KindlingError ? err : new InternalError(messageOf(err), {}, { cause: err });
}

/** Any thrown value as wire error info. */
export function toErrorInfo(err: unknown): ErrorInfo {
  return asKindlingError(err).toInfo();
}
