import { Command } from 'commander';
import { InvalidArgumentError, NotFoundError, type Backend, type Connection, type ConnectorInfo, type DriverName, type Volume } from '@kindling/sdk';
import { destructive, resendable, type ResendFlags } from '../changes.js';
import { collect, parseJsonArg, parseMetadata, parseSize } from '../parse.js';
import { followProgress } from '../progress.js';
import type { AgentRef, VolumeRecord } from '../records.js';
import { agentRef, eachVolume, findBackend, findSnapshot, findVolume, volumeView, type Located } from '../resolve.js';
import { act, type Runtime } from '../runtime.js';
import type { Scope } from '../scope.js';
import { byCreation, named, connectionFields, connectionJson, connectionRecord, volumeFields, volumeJson, VOLUME_COLUMNS, withAgent, type VolumeView } from '../views.js';
import { untilStarted } from '../waiting.js';

interface NewVolumeFlags extends ResendFlags {
  size?: string;
  name?: string;
  description?: string;
  metadata?: string[];
  wait?: boolean;
}

const newVolumeOptions = (flags: NewVolumeFlags) => ({
  ...(flags.size !== undefined ? { size: parseSize(flags.size) } : {}),
  ...(flags.name !== undefined ? { name: flags.name } : {}),
  ...(flags.description !== undefined ? { description: flags.description } : {}),
  ...(flags.metadata ? { metadata: parseMetadata(flags.metadata) } : {}),
  ...(flags.requestId !== undefined ? { requestId: flags.requestId } : {}),
});

function showVolume(scope: Scope, view: VolumeView): void {
  scope.out.item(volumeFields(view), volumeJson(view));
}

/** A connection made by attach or connect, its secrets shown only when asked for. */
function showConnection(scope: Scope, conn: Connection, agent: AgentRef): void {
  const view = { record: connectionRecord(conn.toDict(), scope.showSecrets), agent: agentRef(agent) };
  scope.out.item(connectionFields(view), connectionJson(view));
}

const showLive = (scope: Scope, volume: Volume) => showVolume(scope, volumeView(scope, volume, scope.agentOf(volume)));

/**
 * A new volume copied from `source` (a clone, or a volume from a snapshot), its progress followed from before
 * the call; shown once done, or as the agent announced it `creating` with `--no-wait` (no relations yet).
 */
async function showCopy(
  scope: Scope,
  source: Located<unknown>,
  op: 'volume.clone' | 'snapshot.createVolume' | 'volume.copyFrom',
  copy: () => Promise<Volume>,
  wait: boolean,
  isCopy: (record: VolumeRecord) => boolean,
): Promise<void> {
  const agent = source.agent.agent;
  const stop = followProgress(agent, scope.progress, (p) => p.op === op);
  try {
    const outcome = await untilStarted(agent, copy(), wait, (f) => (f.event === 'volume' && isCopy(f.resource) && f.resource.status === 'creating' ? f.resource : undefined));
    if ('done' in outcome) showLive(scope, outcome.done);
    else showVolume(scope, { record: outcome.began, snapshots: [], connections: [], agent: agentRef(source.agent) });
  } finally {
    stop();
  }
}

/**
 * The backend `--to` names: `<agent>/<backend>`, the agent by its URL (as given to --agents, with or
 * without `/rpc`) or host id; a bare backend name must be on one agent only.
 */
async function findTarget(scope: Scope, to: string): Promise<Located<Backend>> {
  const slash = to.lastIndexOf('/');
  if (slash < 0) return findBackend(scope, to, 'change');
  const [agentName, backendName] = [to.slice(0, slash), to.slice(slash + 1)];
  const agent = scope.agents.find((a) => a.hostId === agentName || a.url === agentName || a.url.replace(/\/rpc$/, '') === agentName);
  if (!agent) throw new NotFoundError(`no agent ${agentName} among ${scope.agents.map((a) => a.url).join(', ')}`, { agent: agentName });
  const backend = (await agent.agent.backends()).find((b) => b.name === backendName);
  if (!backend) throw new NotFoundError(`agent ${agent.url} has no backend ${backendName}`, { agent: agent.url, backend: backendName });
  return { item: backend, agent };
}

const newVolumeFlags = (command: Command): Command =>
  resendable(command)
    .option('--name <name>', 'name of the new volume')
    .option('--description <text>', 'description of the new volume')
    .option('--metadata <key=value>', 'metadata entry (repeatable)', collect)
    .option('--wait', 'wait until the copy is done (default)')
    .option('--no-wait', 'return once the agent has started the copy');

export function volumeCommand(runtime: Runtime): Command {
  const volume = new Command('volume').description('volumes: list, create, copy, attach, delete');

  volume
    .command('list')
    .description('list volumes (of every backend, or over a fleet, of every agent)')
    .option('--backend <name>', 'only this backend')
    .option('--driver <driver>', 'only backends of this driver (lvm, nfs)')
    .option('--name <name>', 'only volumes of this name')
    .action(
      act<{ backend?: string; driver?: DriverName; name?: string }>(runtime, async (scope, _args, opts) => {
        // Scripts' formats get each row as its page arrives (in the agents' order); a table, sorted, at the end.
        const rows = scope.out.rows(withAgent(scope.settings.fleet, VOLUME_COLUMNS), volumeJson, byCreation);
        await eachVolume(scope, opts, ({ item, agent }) => rows.add(volumeView(scope, item, agent)));
        rows.end();
      }),
    );

  volume
    .command('show')
    .description('show one volume, with its snapshots and connections')
    .argument('<volume>', 'volume id or name')
    .option('--backend <name>', 'look in this backend only')
    .action(
      act<{ backend?: string }>(runtime, async (scope, [ref], opts) => {
        const { item, agent } = await findVolume(scope, ref!, 'read', opts.backend);
        showVolume(scope, volumeView(scope, item, agent));
      }),
    );

  newVolumeFlags(
    volume
      .command('create')
      .description('create a volume: on --backend, from --snapshot, or where the fleet has most room')
      .option('--size <GiB>', 'size in GiB (required, except from a snapshot: its size by default)')
      .option('--backend <name>', 'on this backend (default: placed on the backend with most room)')
      .option('--driver <driver>', 'placed on a backend of this driver (lvm, nfs)')
      .option('--snapshot <snapshot>', 'with the data of this snapshot (id or name), on its backend'),
  ).action(
    act<NewVolumeFlags & { backend?: string; driver?: DriverName; snapshot?: string }>(runtime, async (scope, _args, opts) => {
      const options = newVolumeOptions(opts);
      if (opts.snapshot !== undefined) {
        if (opts.backend !== undefined || opts.driver !== undefined) throw new InvalidArgumentError('a volume from --snapshot goes on the snapshot\'s backend: drop --backend/--driver');
        const snap = await findSnapshot(scope, opts.snapshot, 'change');
        const fromSnap = (r: VolumeRecord) => r.snapshotId === snap.item.id;
        return showCopy(scope, snap, 'snapshot.createVolume', () => snap.item.createVolume(options), opts.wait !== false, fromSnap);
      }
      const { size } = options;
      if (size === undefined) throw new InvalidArgumentError('--size is required (except with --snapshot)');
      if (opts.backend !== undefined) {
        if (opts.driver !== undefined) throw new InvalidArgumentError('give --backend or --driver, not both');
        const { item } = await findBackend(scope, opts.backend, 'change');
        return showLive(scope, await item.createVolume({ ...options, size }));
      }
      // A placed create may go elsewhere on a rerun: the id is only worth giving with the backend it went to.
      if (opts.requestId !== undefined) throw new InvalidArgumentError('--request-id needs the --backend (and --url) the failed try printed');
      showLive(scope, await scope.createPlaced({ ...options, size, driver: opts.driver }));
    }),
  );

  destructive(resendable(volume.command('delete')), runtime)
    .description('delete a volume (refused while it has snapshots)')
    .argument('<volume>', 'volume id or name')
    .option('--wait', 'wait until it is gone (default)')
    .option('--no-wait', 'return once the agent has started deleting')
    .action(
      act<{ wait?: boolean; yes?: boolean } & ResendFlags>(runtime, async (scope, [ref], opts) => {
        const { item, agent } = await findVolume(scope, ref!, 'change');
        await scope.confirm(opts.yes, `delete volume ${named(item)} on ${agent.url}`);
        const outcome = await untilStarted(agent.agent, item.delete({ requestId: opts.requestId }), opts.wait !== false, (f) =>
          f.event === 'volume' && f.resource.id === item.id && f.resource.status === 'deleting' ? f.resource : undefined,
        );
        const status = 'done' in outcome ? 'deleted' : 'deleting';
        scope.out.text(`volume ${item.id} ${status}`, { kind: 'volume', id: item.id, status });
      }),
    );

  resendable(volume.command('extend'))
    .description('grow a volume')
    .argument('<volume>', 'volume id or name')
    .argument('<size>', 'new size in GiB')
    .action(
      act<ResendFlags>(runtime, async (scope, [ref, size], opts) => {
        const newSize = parseSize(size!, 'the new size');
        const { item } = await findVolume(scope, ref!, 'change');
        await item.extend(newSize, { requestId: opts.requestId });
        showLive(scope, item);
      }),
    );

  volume
    .command('reset-state')
    .description("settle a volume left in error against what storage holds (admin; refused when storage does not hold it whole)")
    .argument('<volume>', 'volume id or name')
    .action(
      act(runtime, async (scope, [ref]) => {
        const { item } = await findVolume(scope, ref!, 'change');
        await item.resetState();
        showLive(scope, item);
      }),
    );

  newVolumeFlags(
    volume
      .command('clone')
      .description('copy a volume into a new one on the same backend')
      .argument('<volume>', 'volume id or name')
      .option('--size <GiB>', 'size of the copy (default: the same)'),
  ).action(
    act<NewVolumeFlags>(runtime, async (scope, [ref], opts) => {
      const options = newVolumeOptions(opts);
      const source = await findVolume(scope, ref!, 'change');
      const fromSource = (r: VolumeRecord) => r.sourceVolId === source.item.id;
      await showCopy(scope, source, 'volume.clone', () => source.item.clone(options), opts.wait !== false, fromSource);
    }),
  );

  newVolumeFlags(
    volume
      .command('copy')
      .description('copy a volume into a new one on another backend, of this agent or another (give both with --agents)')
      .argument('<volume>', 'volume id or name')
      .requiredOption('--to <agent/backend>', 'the target backend: <agent>/<backend> (agent by URL or host id), or a backend name')
      .option('--size <GiB>', 'size of the copy (default: the same)'),
  ).action(
    act<NewVolumeFlags & { to: string }>(runtime, async (scope, [ref], opts) => {
      const options = newVolumeOptions(opts);
      const source = await findVolume(scope, ref!, 'change');
      const target = await findTarget(scope, opts.to);
      const onTarget = (r: VolumeRecord) => r.backend === target.item.name;
      await showCopy(scope, target, 'volume.copyFrom', () => source.item.clone({ ...options, backend: target.item }), opts.wait !== false, onTarget);
    }),
  );

  resendable(volume.command('migrate'))
    .description('move a volume to another backend, of this agent or another: copy, then delete it here (refused with snapshots or connections)')
    .argument('<volume>', 'volume id or name')
    .requiredOption('--to <agent/backend>', 'the target backend: <agent>/<backend> (agent by URL or host id), or a backend name')
    .action(
      act<ResendFlags & { to: string }>(runtime, async (scope, [ref], opts) => {
        const source = await findVolume(scope, ref!, 'change');
        const target = await findTarget(scope, opts.to);
        const stop = followProgress(target.agent.agent, scope.progress, (p) => p.op === 'volume.copyFrom');
        try {
          const moved = await source.item.migrate({ backend: target.item, ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}) });
          showLive(scope, moved);
        } finally {
          stop();
        }
      }),
    );

  destructive(resendable(volume.command('revert')), runtime)
    .description("put a volume's data back to one of its snapshots (what was written since is lost)")
    .argument('<volume>', 'volume id or name')
    .argument('<snapshot>', 'snapshot id or name, of this volume')
    .option('--wait', 'wait until the data is back (default)')
    .option('--no-wait', 'return once the agent has started reverting')
    .action(
      act<{ wait?: boolean; yes?: boolean } & ResendFlags>(runtime, async (scope, [ref, snapRef], opts) => {
        const { item, agent } = await findVolume(scope, ref!, 'change');
        const snap = (await findSnapshot(scope, snapRef!, 'change', item.id)).item;
        await scope.confirm(opts.yes, `revert volume ${named(item)} on ${agent.url} to snapshot ${named(snap)}, losing what was written since`);
        const stop = followProgress(agent.agent, scope.progress, (p) => p.op === 'volume.revert' && p.id === item.id);
        try {
          const outcome = await untilStarted(agent.agent, item.revertToSnapshot(snap, { requestId: opts.requestId }), opts.wait !== false, (f) =>
            f.event === 'volume' && f.resource.id === item.id && f.resource.status === 'reverting' ? f.resource : undefined,
          );
          if ('done' in outcome) showLive(scope, item);
          else showVolume(scope, { ...volumeView(scope, item, agent), record: outcome.began });
        } finally {
          stop();
        }
      }),
    );

  volume
    .command('attach')
    .description("attach a volume on the agent's own host; prints the local path")
    .argument('<volume>', 'volume id or name')
    .action(
      act(runtime, async (scope, [ref]) => {
        const { item, agent } = await findVolume(scope, ref!, 'change');
        showConnection(scope, await item.attach(), agent);
      }),
    );

  volume
    .command('detach')
    .description("detach a volume from the agent's own host")
    .argument('<volume>', 'volume id or name')
    .action(
      act(runtime, async (scope, [ref]) => {
        const { item } = await findVolume(scope, ref!, 'change');
        await item.detach();
        scope.out.text(`volume ${item.id} detached`, { kind: 'volume', id: item.id, status: item.status });
      }),
    );

  volume
    .command('connect')
    .description("export a volume to another host, described by its connector")
    .argument('<volume>', 'volume id or name')
    .requiredOption('--connector <json>', 'the host\'s connector info as JSON, or @FILE')
    .action(
      act<{ connector: string }>(runtime, async (scope, [ref], opts) => {
        const connector = parseJsonArg(opts.connector, '--connector') as unknown as ConnectorInfo;
        const { item, agent } = await findVolume(scope, ref!, 'change');
        showConnection(scope, await item.connect(connector), agent);
      }),
    );

  volume
    .command('disconnect')
    .description('end an export of a volume (its only one, or the one named)')
    .argument('<volume>', 'volume id or name')
    .argument('[connection]', 'connection id (needed when there are several)')
    .action(
      act(runtime, async (scope, [ref, connId]) => {
        const { item } = await findVolume(scope, ref!, 'change');
        const conn = pickConnection(item, connId);
        await item.disconnect(conn);
        scope.out.text(`connection ${conn.id} of volume ${item.id} removed`, { kind: 'connection', id: conn.id, volumeId: item.id, status: 'deleted' });
      }),
    );

  return volume;
}

function pickConnection(volume: Volume, id: string | undefined) {
  if (id !== undefined) {
    const conn = volume.connections.find((c) => c.id === id);
    if (!conn) throw new NotFoundError(`volume ${volume.id} has no connection ${id}`);
    return conn;
  }
  const [only, ...more] = volume.connections;
  if (!only) throw new NotFoundError(`volume ${volume.id} has no connection`);
  if (more.length > 0) throw new InvalidArgumentError(`volume ${volume.id} has ${volume.connections.length} connections: name one`);
  return only;
}
