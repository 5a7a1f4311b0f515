import { Command } from 'commander';
import type { BackendStats, DriverName } from '@kindling/sdk';
import type { Column, Fields } from '../output.js';
import type { AgentRef } from '../records.js';
import { agentRef, eachBackend, findBackend } from '../resolve.js';
import { act, type Runtime } from '../runtime.js';
import { withAgent } from '../views.js';

interface BackendRow {
  name: string;
  driver: string | null;
  agent: AgentRef;
}

const BACKEND_COLUMNS: Column<BackendRow>[] = [
  { header: 'NAME', value: (b) => b.name },
  { header: 'DRIVER', value: (b) => b.driver ?? '-' },
];

type StatsRow = BackendStats & { agent: AgentRef };

const STATS_COLUMNS: Column<StatsRow>[] = [
  { header: 'BACKEND', value: (s) => s.backendName },
  { header: 'DRIVER', value: (s) => s.driver },
  { header: 'PROTOCOL', value: (s) => s.storageProtocol },
  { header: 'TOTAL', value: (s) => `${s.totalCapacityGb}G` },
  { header: 'FREE', value: (s) => `${s.freeCapacityGb}G` },
  // The largest volume a create accepts now (the agent's one room rule, reserve included, whole GiB rounded
  // down): FREE is storage's figure and may read 1.00G where a 1 GiB create is refused.
  { header: 'FITS', value: (s) => (s.maxVolumeSizeGb === undefined ? '-' : `${s.maxVolumeSizeGb}G`) },
  { header: 'PROVISIONED', value: (s) => `${s.provisionedCapacityGb}G` },
  { header: 'VOLUMES', value: (s) => String(s.totalVolumes) },
  { header: 'SNAPSHOTS', value: (s) => String(s.totalSnapshots) },
];

export function backendCommand(runtime: Runtime): Command {
  const backend = new Command('backend').description('backends: what the agents serve, their capacity and features');

  backend
    .command('list')
    .description('list the configured backends')
    .option('--driver <driver>', 'only backends of this driver (lvm, nfs)')
    .action(
      act<{ driver?: DriverName }>(runtime, async (scope, _args, opts) => {
        // The backends each agent named in its hello: no round trip, no stats.
        const perAgent = await Promise.all(scope.up().map(async (agent) => ({ agent, backends: await agent.agent.backends() })));
        const rows = perAgent.flatMap(({ agent, backends }) =>
          backends.filter((b) => opts.driver === undefined || b.driver === opts.driver).map((b) => ({ name: b.name, driver: b.driver, agent: agentRef(agent) })),
        );
        scope.out.list(rows, withAgent(scope.settings.fleet, BACKEND_COLUMNS), (r) => r);
      }),
    );

  backend
    .command('stats')
    .description('capacity and counts per backend (GiB)')
    .argument('[backend]', 'only this backend')
    .option('--driver <driver>', 'only backends of this driver (lvm, nfs)')
    .option('--refresh', 'have the agent rescan storage first')
    .action(
      act<{ driver?: DriverName; refresh?: boolean }>(runtime, async (scope, [name], opts) => {
        if (name !== undefined) await findBackend(scope, name); // NOT_FOUND for a name no agent has.
        const rows = await eachBackend(scope, { backend: name, driver: opts.driver }, async (b, agent): Promise<StatsRow> => ({
          ...(await b.stats({ refresh: opts.refresh ?? false })),
          agent: agentRef(agent),
        }));
        scope.out.list(rows, withAgent(scope.settings.fleet, STATS_COLUMNS), (r) => r);
      }),
    );

  backend
    .command('capabilities')
    .description('which operations a backend supports as configured')
    .argument('<backend>', 'backend name')
    .action(
      act(runtime, async (scope, [name]) => {
        const { item, agent } = await findBackend(scope, name!);
        const caps = await item.capabilities();
        const fields: Fields = Object.entries(caps).map(([key, value]) => [key, Array.isArray(value) ? value.join(', ') || '-' : value ? 'yes' : 'no']);
        scope.out.item(fields, { backend: item.name, driver: item.driver, agent: agentRef(agent), capabilities: caps });
      }),
    );

  return backend;
}
