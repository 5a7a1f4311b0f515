import { NotFoundError, type Backend, type BackendStats, type DriverName, type Fleet, type FleetAgent, type Snapshot, type Volume } from '@kindling/sdk';
import { status } from '@grpc/grpc-js';
import { CsiError } from './errors.js';
import type { SnapshotRef, VolumeRef } from './ids.js';

/** Every up agent's answer, or UNAVAILABLE: a listing missing a host would read as volumes gone. */
export function whole<T>(result: { failed: { url: string }[] } & T): T {
  if (result.failed.length) throw new CsiError(status.UNAVAILABLE, `agents not answering: ${result.failed.map((f) => f.url).join(', ')}`);
  return result;
}

/** From an id to the live SDK object on the agent it names, without asking any other agent. */
export class Router {
  constructor(readonly fleet: Fleet) {}

  /**
   * The up agent with this host id; null when no agent has it (the resource cannot exist);
   * UNAVAILABLE when it may be one that is down, since then nobody can say.
   */
  agent(hostId: string): FleetAgent | null {
    const agents = this.fleet.agents;
    const up = agents.find((a) => a.state === 'up' && a.hostId === hostId);
    if (up) return up;
    const maybe = agents.find((a) => a.state !== 'up' && (a.hostId === hostId || a.hostId === null));
    if (maybe) throw new CsiError(status.UNAVAILABLE, `the agent of host ${hostId} is not reachable (${maybe.url})`);
    return null;
  }

  async backend(hostId: string, name: string): Promise<Backend | null> {
    const agent = this.agent(hostId);
    if (!agent) return null;
    try {
      return await agent.agent.backend(name);
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
  }

  async volume(ref: VolumeRef): Promise<Volume | null> {
    const backend = await this.backend(ref.hostId, ref.backend);
    if (!backend) return null;
    const [found] = await backend.volumesFiltered({ volumeId: ref.volumeId });
    return found && found.status !== 'deleted' ? found : null;
  }

  async snapshot(ref: SnapshotRef): Promise<Snapshot | null> {
    const volume = await this.volume(ref);
    return [...(volume?.snapshots ?? [])].find((s) => s.id === ref.snapshotId && s.status !== 'deleted') ?? null;
  }

  /**
   * The volumes on `hosts` (null: on every agent, which must all answer), only those named `name`
   * if given. An agent outside `hosts` is never asked: one host down does not stop work pinned to another.
   */
  async volumesOn(hosts: readonly string[] | null, name?: string): Promise<Volume[]> {
    if (!hosts) return whole(await this.fleet.volumes({ name })).volumes;
    const found: Volume[] = [];
    for (const host of hosts) {
      const agent = this.agent(host);
      for (const backend of agent ? await agent.agent.backends() : []) found.push(...(await backend.volumesFiltered({ volumeName: name })));
    }
    return found;
  }

  /**
   * Each backend's stats (of `driver`) as its agent last pushed them (fetched at each (re)connect,
   * pushed on every change and on the agent's refresh timer): no agent is asked. On `host` only when
   * given (UNAVAILABLE while its agent is down: its room is unknown, not none), else on every up agent.
   * A backend that cannot report (not ready) has no figures and counts no room.
   */
  async statsOn(host: string | null, driver: DriverName | undefined): Promise<{ backend: Backend; stats: BackendStats }[]> {
    const agents = host ? [this.agent(host)].filter((a): a is FleetAgent => a !== null) : this.fleet.agents.filter((a) => a.state === 'up');
    const found: { backend: Backend; stats: BackendStats }[] = [];
    for (const agent of agents) {
      for (const backend of await agent.agent.backends()) {
        const stats = agent.capacity.get(backend.name);
        if (stats && (driver === undefined || backend.driver === driver)) found.push({ backend, stats });
      }
    }
    return found;
  }

  /** The host id of an object this fleet handed out. */
  hostOf(resource: Volume | Snapshot): string {
    return this.fleet.agentOf(resource).hostId ?? '';
  }
}
