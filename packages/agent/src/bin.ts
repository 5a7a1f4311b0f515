#!/usr/bin/env node
import { startAgent } from './agent.js';
import { readCli, USAGE, UsageRequested } from './cli.js';
import { ConfigError } from './config.js';
import { reindex } from './reindex.js';
import { reconcile } from './service/reconcile.js';
import { recoveryLines } from './service/recovery.js';

/** KINDLING_DRAIN_MS: how long a stop waits for operations in flight (tests shorten it). */
function drainMsFromEnv(): number | undefined {
  const ms = Number(process.env.KINDLING_DRAIN_MS);
  return process.env.KINDLING_DRAIN_MS && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

async function main(): Promise<void> {
  const { command, config } = await readCli(process.argv.slice(2), process.cwd());
  if (command === 'reindex') {
    process.exitCode = await reindex(config);
    return;
  }
  const agent = await startAgent(config, undefined, { drainMs: drainMsFromEnv() });
  // Before anything else: the agent serves from here on, and a stop must wait for what it started.
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  for (const line of recoveryLines(agent.services.recovery)) console.error(`kindling-agent: ${line}`);
  // One JSON line on stdout says where it listens: scripts and tests read it (port 0 picks a free port).
  console.log(JSON.stringify({ event: 'listening', url: agent.url, port: agent.port, hostId: agent.services.hostId }));
  for (const r of await agent.services.backends.readiness()) {
    if (!r.ready) console.error(`kindling-agent: backend ${r.name} is not ready: ${r.reason ?? 'unknown'}`);
  }
  // The start-time check reads all of storage, so it runs after serving starts and only reports.
  void reconcile(agent.services, false).then((reports) => {
    for (const r of reports) {
      if (r.error) console.error(`kindling-agent: index check of ${r.backend} failed: ${r.error}`);
      const extra = r.missingFromIndex.map((m) => `${m.kind} ${m.id}`);
      const lost = r.missingFromStorage.map((m) => `${m.kind} ${m.id}`);
      if (extra.length) console.error(`kindling-agent: ${r.backend} holds what the index lacks (run reindex): ${extra.join(', ')}`);
      if (lost.length) console.error(`kindling-agent: the index has what ${r.backend} lacks: ${lost.join(', ')}`);
    }
  });
}

main().catch((err: unknown) => {
  if (err instanceof UsageRequested) {
    console.log(USAGE);
    return;
  }
  console.error(`kindling-agent: ${err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(2);
});
