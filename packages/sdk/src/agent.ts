import { EventEmitter } from 'node:events';
import { UnavailableError, type EventFrame, type HelloResult } from '@kindling/protocol';
import type { Backend } from './backend.js';
import { createGroupSnapshot, GroupSnapshot, type CreateGroupSnapshotOptions } from './group-snapshot.js';
import { KeyValueStore } from './kv.js';
import { allPages } from './paging.js';
import type { VolumeDump } from './serialization.js';
import { IdentityMap } from './identity-map.js';
import type { Load, Volume } from './registry.js';
import type { ConnectOptions } from './options.js';
import { Transport } from './transport.js';

declare module './registry.js' {
  interface Classes {
    Agent: InstanceType<typeof Agent>;
  }
}

export type AgentEvents = {
  /** Every agent push (status and capacity changes), after the objects it concerns were updated. */
  event: [frame: EventFrame];
  /**
   * The socket dropped and a redial is under way; calls in flight wait for it (up to the reconnect
   * `waitMs`) and are sent again with the same requestId, so each still happens once.
   */
  disconnect: [error: UnavailableError];
  /**
   * The agent is back, said hello again, and every volume this Agent holds (with its snapshots and
   * connections) is up to date, read as the changes since this Agent's place in the agent's change
   * sequence: what changed while the link was down shows, and what went is marked `deleted`.
   */
  reconnect: [];
};

/**
 * One agent, over one WebSocket, with its own identity map. `Agent.connect(url, opts)` is the usual
 * door; `new Agent(url, opts)` then `open()` lets a caller (a fleet) hold an agent before it answers.
 */
export class Agent extends EventEmitter<AgentEvents> {
  /** As given, e.g. `ws://127.0.0.1:8600`. */
  readonly url: string;
  readonly kv: KeyValueStore;
  /**
   * Live, identity-mapped objects from `json`/`dump` output (or its text), with no round trip: loading
   * an id this Agent holds updates and returns that same object. A backend this agent lacks becomes
   * a stub Backend, so an attach-only user can load what a controller sent.
   */
  readonly load: Load;
  readonly #transport: Transport;
  readonly #identities: IdentityMap;
  #hello: HelloResult | null = null;

  constructor(url: string, options: ConnectOptions = {}) {
    super();
    this.url = url;
    this.#transport = new Transport(url, options);
    this.#identities = new IdentityMap(this.#transport, this, options.follow === 'held');
    this.kv = new KeyValueStore(this.#transport);
    this.load = this.#identities.loader();
    this.#transport.on('event', (frame) => {
      this.#identities.applyEvent(frame);
      this.emit('event', frame);
    });
    this.#transport.on('up', (hello) => {
      this.#adopt(hello);
      // Pushes sent while the link was down were missed: bring what this Agent holds up to date first.
      this.#identities.resync(hello.changes).then(
        () => this.emit('reconnect'),
        () => this.emit('reconnect'),
      );
    });
    this.#transport.on('down', (error) => this.emit('disconnect', error));
    this.#transport.on('late', (reply) => this.#identities.adoptLate(reply));
  }

  /** Connects, authenticates (UnauthorizedError on a refused token) and says hello. */
  static async connect(url: string, options: ConnectOptions = {}): Promise<Agent> {
    return new Agent(url, options).open();
  }

  /** Connects if not connected (waiting for a redial under way); a no-op when connected. */
  async open(): Promise<this> {
    const hello = await this.#transport.open();
    this.#adopt(hello);
    await this.#identities.begin(hello.changes);
    return this;
  }

  get connected(): boolean {
    return this.#transport.connected;
  }
  get hostId(): string {
    return this.#helloOrThrow().hostId;
  }
  get agentVersion(): string {
    return this.#helloOrThrow().agentVersion;
  }
  get protocolVersion(): number {
    return this.#helloOrThrow().protocolVersion;
  }

  /** A configured backend by name; NotFoundError otherwise. */
  async backend(name: string): Promise<Backend> {
    return this.#identities.configuredBackend(name);
  }

  async backends(): Promise<Backend[]> {
    return this.#identities.configuredBackends();
  }

  /**
   * Takes back a call made with `{ requestId }` that still waits for its turn on the agent: that call
   * then rejects with CONFLICT (`details.cancelled`) and nothing of it ran. False when it has already
   * started (it runs on), finished, or is unknown.
   */
  async cancel(requestId: string): Promise<boolean> {
    return (await this.#identities.call('request.cancel', { requestId })).cancelled;
  }

  /**
   * Snapshots of `volumes`, all of this agent, cut at one instant (docs/api.md, "Group snapshots"):
   * members on another agent are refused (InvalidArgumentError) before anything is asked.
   */
  async createGroupSnapshot(volumes: readonly Volume[], options: CreateGroupSnapshotOptions = {}): Promise<GroupSnapshot> {
    return createGroupSnapshot(this.#identities, this, volumes, options);
  }

  /** A group snapshot of this agent by id, its members loaded (NotFoundError when it is gone). */
  async groupSnapshot(id: string): Promise<GroupSnapshot> {
    return GroupSnapshot.load(this.#identities, await this.#identities.call('group.get', { id }));
  }

  /** The group snapshot of this agent named `name` (the newest, if several), its members loaded; null when none. */
  async groupSnapshotNamed(name: string): Promise<GroupSnapshot | null> {
    const records = await allPages('groups', (paging) => this.#identities.call('group.list', paging));
    const named = records.filter((g) => g.name === name).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    const newest = named.at(-1);
    return newest ? GroupSnapshot.load(this.#identities, newest) : null;
  }

  /** Every volume this Agent holds, with its snapshots and connections inlined. */
  dump(): VolumeDump[] {
    return this.#identities.dump();
  }

  async close(): Promise<void> {
    await this.#transport.close();
  }

  #adopt(hello: HelloResult): void {
    this.#hello = hello;
    this.#identities.adoptBackends(hello.backends);
  }

  #helloOrThrow(): HelloResult {
    if (!this.#hello) throw new UnavailableError(`never connected to the agent at ${this.url}`);
    return this.#hello;
  }
}
