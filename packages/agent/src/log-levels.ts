// The log levels, apart from the logger: the CLI parses them before (and without) loading pino.
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const isLogLevel = (s: string): s is LogLevel => (LOG_LEVELS as readonly string[]).includes(s);

/**
 * Without --log-level: warnings and errors only (command failures, refused credentials, recovery's
 * findings, server errors). `--log-level info` adds one line per request and the start and stop;
 * the systemd unit sets it.
 */
export const DEFAULT_LOG_LEVEL: LogLevel = 'warn';
