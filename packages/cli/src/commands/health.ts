import { Command } from 'commander';
import type { AgentHealth } from '@kindling/sdk';
import { exitCodeOf, EXIT } from '../exit-codes.js';
import type { Column } from '../output.js';
import { act, type Runtime } from '../runtime.js';
import { orDash } from '../views.js';

const HEALTH_COLUMNS: Column<AgentHealth>[] = [
  { header: 'AGENT', value: (h) => h.url },
  { header: 'HOST', value: (h) => orDash(h.hostId) },
  { header: 'LINK', value: (h) => h.state },
  { header: 'READY', value: (h) => (h.ready ? 'yes' : 'no') },
  {
    header: 'BACKENDS',
    value: (h) => h.readyz?.backends.map((b) => `${b.name}:${b.ready ? 'ready' : 'not-ready'}`).join(',') || '-',
  },
  { header: 'PROBLEM', value: (h) => orDash(problem(h)) },
];

/** Why an agent is not healthy, in a line, or null. */
function problem(h: AgentHealth): string | null {
  if (h.lastError && h.state !== 'up') return `${h.lastError.code}: ${h.lastError.message}`;
  if (h.readyzError) return `${h.readyzError.code}: ${h.readyzError.message}`;
  const down = h.readyz?.backends.filter((b) => !b.ready) ?? [];
  return down.length > 0 ? down.map((b) => `${b.name}: ${b.reason ?? 'not ready'}`).join('; ') : null;
}

const healthy = (h: AgentHealth) => h.state === 'up' && h.ready;

export function healthCommand(runtime: Runtime): Command {
  return new Command('health')
    .description('is each agent reachable, and is each backend ready (exit 0 only when all are)')
    .action(
      act(runtime, async (scope) => {
        const report = await scope.health();
        scope.out.list(report, HEALTH_COLUMNS, (h) => ({
          url: h.url,
          hostId: h.hostId,
          link: h.state,
          ready: h.ready,
          backends: h.readyz?.backends ?? [],
          problem: problem(h),
        }));
        // The first sick agent's error decides the status (a refused token stays UNAUTHORIZED); not ready is UNAVAILABLE.
        const sick = report.find((h) => !healthy(h));
        if (sick) runtime.exitCode = sick.state !== 'up' && sick.lastError ? exitCodeOf(sick.lastError.code) : EXIT.UNAVAILABLE;
      }),
    );
}
