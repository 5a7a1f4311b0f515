import { Command } from 'commander';
import { InvalidArgumentError } from '@kindling/sdk';
import { destructive, resendable, type ResendFlags } from '../changes.js';
import { allVolumes, findSnapshot, findVolume, snapshotView } from '../resolve.js';
import { act, type Runtime } from '../runtime.js';
import type { Scope } from '../scope.js';
import { byCreation, named, SNAPSHOT_COLUMNS, snapshotFields, snapshotJson, withAgent, type SnapshotView } from '../views.js';
import { untilStarted } from '../waiting.js';

function showSnapshot(scope: Scope, view: SnapshotView): void {
  scope.out.item(snapshotFields(view), snapshotJson(view));
}

/** `snapshot create --group`: the SDK refuses members of several agents before anything is asked. */
async function createGroup(scope: Scope, refs: string[], opts: { name?: string; description?: string } & ResendFlags): Promise<void> {
  if (opts.description !== undefined) throw new InvalidArgumentError('--description is not taken with --group: name the members with --name');
  const found = [];
  for (const ref of refs) found.push(await findVolume(scope, ref, 'change'));
  const first = found[0]!;
  const group = await first.item.backend.agent.createGroupSnapshot(
    found.map((f) => f.item),
    { name: opts.name, requestId: opts.requestId },
  );
  const members = group.snapshots.map((snap) => snapshotView(snap, first.agent));
  scope.out.item(
    [
      ['Group', group.id],
      ['Name', group.name ?? '-'],
      ['Status', group.status],
      ['Snapshots', members.map((m) => `${m.record.id} (of ${m.record.volumeId})`).join(', ')],
    ],
    { kind: 'groupSnapshot', id: group.id, name: group.name, status: group.status, createdAt: group.createdAt, snapshots: members.map(snapshotJson) },
  );
}

export function snapshotCommand(runtime: Runtime): Command {
  const snapshot = new Command('snapshot').description('snapshots: list, create, delete');

  snapshot
    .command('list')
    .description('list snapshots (of one volume, one backend, or all)')
    .option('--volume <volume>', 'only the snapshots of this volume (id or name)')
    .option('--backend <name>', 'only this backend')
    .action(
      act<{ volume?: string; backend?: string }>(runtime, async (scope, _args, opts) => {
        const volumes = opts.volume !== undefined ? [await findVolume(scope, opts.volume, 'read', opts.backend)] : await allVolumes(scope, { backend: opts.backend });
        const views = volumes
          .flatMap(({ item, agent }) => [...item.snapshots].map((s) => snapshotView(s, agent)))
          .sort(byCreation);
        scope.out.list(views, withAgent(scope.settings.fleet, SNAPSHOT_COLUMNS), snapshotJson);
      }),
    );

  snapshot
    .command('show')
    .description('show one snapshot')
    .argument('<snapshot>', 'snapshot id or name')
    .option('--volume <volume>', 'look among the snapshots of this volume only')
    .action(
      act<{ volume?: string }>(runtime, async (scope, [ref], opts) => {
        const { item, agent } = await findSnapshot(scope, ref!, 'read', opts.volume);
        showSnapshot(scope, snapshotView(item, agent));
      }),
    );

  resendable(snapshot.command('create'))
    .description('take a snapshot of a volume, or with --group one snapshot of each volume cut at one instant')
    .argument('<volume...>', 'volume id or name (several with --group, all on one agent)')
    .option('--name <name>', 'name of the snapshot (of each member with --group)')
    .option('--description <text>', 'description of the snapshot')
    .option('--group', 'a group snapshot of every volume given, all cut at one instant')
    .action(
      act<{ name?: string; description?: string; group?: boolean } & ResendFlags>(runtime, async (scope, refs, opts) => {
        if (opts.group) return createGroup(scope, refs, opts);
        if (refs.length !== 1) throw new InvalidArgumentError(`snapshot create takes one volume (${refs.length} given); several need --group`);
        const { item, agent } = await findVolume(scope, refs[0]!, 'change');
        const snap = await item.createSnapshot({ name: opts.name, description: opts.description, requestId: opts.requestId });
        showSnapshot(scope, snapshotView(snap, agent));
      }),
    );

  destructive(resendable(snapshot.command('delete')), runtime)
    .description('delete a snapshot')
    .argument('<snapshot>', 'snapshot id or name')
    .option('--volume <volume>', 'look among the snapshots of this volume only')
    .option('--wait', 'wait until it is gone (default)')
    .option('--no-wait', 'return once the agent has started deleting')
    .action(
      act<{ volume?: string; wait?: boolean; yes?: boolean } & ResendFlags>(runtime, async (scope, [ref], opts) => {
        const { item, agent } = await findSnapshot(scope, ref!, 'change', opts.volume);
        await scope.confirm(opts.yes, `delete snapshot ${named(item)} of volume ${item.volumeId} on ${agent.url}`);
        const outcome = await untilStarted(agent.agent, item.delete({ requestId: opts.requestId }), opts.wait !== false, (f) =>
          f.event === 'snapshot' && f.resource.id === item.id && f.resource.status === 'deleting' ? f.resource : undefined,
        );
        const status = 'done' in outcome ? 'deleted' : 'deleting';
        scope.out.text(`snapshot ${item.id} ${status}`, { kind: 'snapshot', id: item.id, status });
      }),
    );

  return snapshot;
}
