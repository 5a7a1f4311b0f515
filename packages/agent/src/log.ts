import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { PrettyOptions, PrettyStream } from 'pino-pretty';
import { DEFAULT_LOG_LEVEL } from './log-levels.js';

export type { Logger };
export { DEFAULT_LOG_LEVEL, LOG_LEVELS, isLogLevel, type LogLevel } from './log-levels.js';

/** pino-pretty is loaded only for a person at a terminal: under systemd (JSON lines) it would cost start-up time for nothing. */
const pretty = (options: PrettyOptions): PrettyStream => (createRequire(import.meta.url)('pino-pretty') as (o: PrettyOptions) => PrettyStream)(options);


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
