import type { ErrorCode } from '@kindling/sdk';

/**
 * The exit status of every outcome, fixed so scripts can branch on it. One number per kind of
 * failure a script would handle differently; codes a script cannot act on apart share one.
 */
export const EXIT = {
  OK: 0,
  /** A failure of the CLI itself (a bug): the message says what. */
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  BACKEND_ERROR: 5,
  UNAUTHORIZED: 6,
  UNAVAILABLE: 7,
  BUSY: 8,
  UNSUPPORTED: 9,
  INTERNAL: 10,
  /** A fleet command where some agents did not answer: what answered was printed. */
  PARTIAL: 11,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const BY_ERROR_CODE: Record<ErrorCode, ExitCode> = {
  INVALID_ARGUMENT: EXIT.USAGE,
  NOT_FOUND: EXIT.NOT_FOUND,
  CONFLICT: EXIT.CONFLICT,
  BACKEND_ERROR: EXIT.BACKEND_ERROR,
  UNAUTHORIZED: EXIT.UNAUTHORIZED,
  UNAVAILABLE: EXIT.UNAVAILABLE,
  TIMEOUT: EXIT.UNAVAILABLE,
  BUSY: EXIT.BUSY,
  UNSUPPORTED: EXIT.UNSUPPORTED,
  INTERNAL: EXIT.INTERNAL,
  PROTOCOL: EXIT.INTERNAL,
};

export function exitCodeOf(code: ErrorCode): ExitCode {
  return BY_ERROR_CODE[code];
}
