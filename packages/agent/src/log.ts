import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const isLogLevel = (s: string): s is LogLevel => (LOG_LEVELS as readonly string[]).includes(s);

/**
 * Without --log-level: warnings and errors only (command failures, refused credentials, recovery's
 * findings, server errors). `--log-level info` adds one line per request and the start and stop;
 * the systemd unit sets it.
 */
export const DEFAULT_LOG_LEVEL: LogLevel = 'warn';

/** Wherever these keys appear in a logged object, their values are replaced: credentials never reach a log. */
const REDACT = [
  'token',
  'readTokens',
  'authorization',
  'password',
  'authPassword',
  'auth_password',
  'chapPassword',
  '*.token',
  '*.readTokens',
  '*.authorization',
  '*.password',
  '*.authPassword',
  '*.auth_password',
  '*.chapPassword',
];

/**
 * The agent's one logger, on stderr (stdout carries only the `listening` line). JSON lines, unless
 * stderr is a terminal: then pino-pretty's coloured lines for a person. Writes are synchronous, so
 * the last lines before an exit are not lost.
 */
export const log: Logger = pino(
  {
    level: DEFAULT_LOG_LEVEL,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // "level":"warn" rather than 40: readable in journalctl and matched by name in Loki or jq.
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT, censor: '[redacted]' },
  },
  process.stderr.isTTY ? pretty({ destination: 2, sync: true, singleLine: true, ignore: 'pid' }) : pino.destination({ dest: 2, sync: true }),
);
