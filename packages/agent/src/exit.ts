/**
 * The agent's exit codes (docs/operations.md lists them): scripts and systemd tell a typo in the
 * config from a busy port or a held index without reading the message.
 */
export const EXIT = {
  OK: 0,
  /** `reindex` or `check-config` found something; or a stop could not close the index cleanly. */
  FINDINGS: 1,
  /** The index cannot be opened: another agent holds it, or it is unreadable. */
  INDEX: 2,
  /** Unknown command or flag, or a flag without its value (sysexits EX_USAGE). */
  USAGE: 64,
  /** Cannot listen: the port is in use or the address is not this host's (EX_UNAVAILABLE). */
  LISTEN: 69,
  /** A bug: an unexpected error, logged with its stack (EX_SOFTWARE). */
  INTERNAL: 70,
  /** The config file, token file or a TLS file is missing, unreadable or invalid (EX_CONFIG). */
  CONFIG: 78,
} as const;

/** A start-up failure: one line for the operator, and the exit code that classifies it. */
export class StartupError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
