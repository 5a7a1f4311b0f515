#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { readCli, USAGE } from './cli.js';
import { EXIT, StartupError } from './exit.js';
import { AGENT_VERSION } from './version.js';

// Each command loads only what it needs (issue 20): --version and --help no logger, server, index or
// metrics; check-config and reindex no server. Hence the dynamic imports below, not static ones.

/** KINDLING_DRAIN_MS: how long a stop waits for operations in flight (tests shorten it). */
function drainMsFromEnv(): number | undefined {
  const ms = Number(process.env.KINDLING_DRAIN_MS);
  return process.env.KINDLING_DRAIN_MS && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/**
 * V8 lets the old space grow to several times what a full collection left live before it collects
 * again: holding 100,000 volumes' index (~100 MB live), the garbage of the storage check after ready
 * and of a full listing took RSS from 160 to 290-430 MiB. Growth capped at 1.3x of the live heap
 * peaked at 235-257 MiB in the same runs, the collections' cost unseen in check and listing times
 * (docs/operations.md, "Sizing"). Read by V8 at each collection, so setting it at start works; a value
 * given on node's own command line stands.
 */
const HEAP_GROWING_PERCENT = 30;

/** Runs the command; a number is the exit code, nothing means the agent serves until a signal stops it. */
async function main(): Promise<number | undefined> {
  const cli = await readCli(process.argv.slice(2), process.cwd());
  if (!('logLevel' in cli)) {
    console.log(cli.command === 'help' ? USAGE : AGENT_VERSION);
    return EXIT.OK;
  }
  const { log } = await import('./log.js');
  log.level = cli.logLevel;
  if (cli.command === 'check-config') {
    const { checkConfig } = await import('./check-config.js');
    return checkConfig(cli, (line) => console.log(line));
  }
  // Serving: the agent's code loads while the config's folders and files are checked.
  const serving = cli.command === 'serve' ? Promise.all([import('./agent.js'), import('./listen-urls.js'), import('./service/recovery.js')]) : null;
  serving?.catch(() => undefined);
  const [{ messageOf }, { checkLocalShares, checkTlsFiles }] = await Promise.all([import('@kindling/protocol'), import('./config.js')]);
  const { config } = cli;
  // Both before the index opens: a typo must not start backends on the wrong folder.
  await checkLocalShares(config);
  if (!serving) {
    // The command is reindex.
    const { reindex } = await import('./reindex.js');
    return reindex(config);
  }
  await checkTlsFiles(config);
  if (!process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent'))) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const [{ startAgent }, { clientUrls }, { recoveryLines }] = await serving;

  const agent = await startAgent(config, undefined, { drainMs: drainMsFromEnv() });
  // Before anything else: the agent serves from here on, and a stop must wait for what it started.
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    agent.stop().then(
      () => {
        log.info('stopped');
        process.exit(EXIT.OK);
      },
      (err: unknown) => {
        log.error({ err }, `stop failed: ${messageOf(err)}`);
        process.exit(EXIT.FINDINGS);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  for (const line of recoveryLines(agent.services.recovery)) log.warn({ recovery: true }, line);
  // One JSON line on stdout says where it listens: scripts and tests read it (port 0 picks a free port).
  const { url, urls, allInterfaces } = clientUrls(config.listen.host, agent.port, config.tls !== undefined);
  console.log(JSON.stringify({ event: 'listening', url, urls, port: agent.port, hostId: agent.services.hostId }));
  const fields = { url, urls, hostId: agent.services.hostId, version: AGENT_VERSION, dataDir: config.dataDir };
  log.info(fields, allInterfaces ? 'listening on all interfaces' : 'listening');
  for (const r of await agent.services.backends.readiness()) {
    if (!r.ready) log.warn({ backend: r.name }, `backend ${r.name} is not ready: ${r.reason ?? 'unknown'}`);
  }
  // The check of storage against the index runs in the services after ready, in the same read as the
  // search for leftovers, and logs its findings itself (services.ts).
  return undefined;
}

main().then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  async (err: unknown) => {
    const [{ log }, { messageOf }] = await Promise.all([import('./log.js'), import('@kindling/protocol')]);
    // A start-up failure is one line; anything else is a bug, logged with its stack.
    if (err instanceof StartupError) log.fatal(err.message);
    else log.fatal({ err }, `cannot start: ${messageOf(err)}`);
    process.exit(err instanceof StartupError ? err.exitCode : EXIT.INTERNAL);
  },
);
