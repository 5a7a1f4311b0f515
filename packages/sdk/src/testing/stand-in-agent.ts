/**
 * A stand-in for the Kindling agent, for the SDK's unit tests only: a real WebSocket server on
 * 127.0.0.1 speaking the protocol's frames (msgpack), with a small in-memory model of volumes,
 * snapshots, connections and kv that pushes an event for each change before it replies, as the agent
 * does. Tests override any op with `handle()` to script replies. The real agent is tested elsewhere.
 *
 * As the agent, it keeps the outcome of each request sent with a `requestId` (across `cut()` and
 * `stop()`/`listen()`, as the agent keeps them in its index): a retry of a finished one gets the recorded
 * outcome, one still running is awaited, and `executions(requestId)` counts how often the work ran.
 * `refuseBusy()` answers BUSY before any work, as an agent at its limit does; after each change it pushes
 * every backend's capacity, after the reply, as the agent does.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  BusyError,
  ConflictError,
  KindlingError,
  MUTATING_OPS,
  NotFoundError,
  PROTOCOL_VERSION,
  decode,
  encode,
  toErrorInfo,
  type BackendInfo,
  type BackendStats,
  type ConnectionRecord,
  type EventFrame,
  type OpName,
  type GroupSnapshotRecord, type SnapshotRecord,
  type VolumeRecord,
} from '@kindling/protocol';

type Args = Record<string, unknown>;
/** `requestId`: the client's id of the request, to name in the progress it pushes. */
export type Handler = (args: Args, request: { requestId?: string }) => unknown;
type Outcome = { ok: true; result: unknown } | { ok: false; error: ReturnType<typeof toErrorInfo> };

export interface StandInOptions {
  token?: string;
  backends?: BackendInfo[];
  port?: number;
  hostId?: string;
  /** Each backend's size, for `backend.stats`. Default 100. */
  capacityGb?: number;
  /**
   * How long after a change's reply its capacity push goes out. Default: the next turn. An agent under
   * load sends it later, in a frame of its own; a delay models that.
   */
  capacityPushDelayMs?: number;
}

/** As the agent pages a listing: id order, after `cursor` (the last id handed out), at most `limit`. */
function pageOf<T extends { id: string }>(items: T[], { limit, cursor }: Args): { items: T[]; nextCursor: string | null } {
  const rest = items.filter((x) => cursor === undefined || x.id > String(cursor)).sort((x, y) => (x.id < y.id ? -1 : 1));
  const max = typeof limit === 'number' ? limit : rest.length;
  const taken = rest.slice(0, max);
  return { items: taken, nextCursor: rest.length > max ? taken[taken.length - 1]!.id : null };
}

export class StandInAgent {
  readonly volumes = new Map<string, VolumeRecord>();
  readonly snapshots = new Map<string, SnapshotRecord>();
  readonly groups = new Map<string, GroupSnapshotRecord>();
  readonly connections = new Map<string, ConnectionRecord>();
  readonly kv = new Map<string, string>();
  /** Every request frame received, in order. */
  readonly requests: { id: number; op: string; args: Args; requestId?: string }[] = [];
  readonly backends: BackendInfo[];
  readonly hostId: string;
  private readonly capacityGb: number;
  private readonly capacityPushDelayMs: number | undefined;
  /** By requestId: the outcome of each request that carried one, kept across restarts. */
  private readonly outcomes = new Map<string, Promise<Outcome>>();
  private readonly runs = new Map<string, number>();
  private busy: { count: number; retryAfterMs: number } = { count: 0, retryAfterMs: 0 };
  /** When set, every upgrade is answered with this HTTP status (421: a Host the agent does not answer to). */
  private upgradeStatus: number | null = null;
  private readonly token: string | undefined;
  private readonly handlers = new Map<string, Handler>();
  private readonly sockets = new Set<WebSocket>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private server: Server | null = null;
  port: number;

  private constructor(options: StandInOptions) {
    this.token = options.token;
    this.backends = options.backends ?? [{ name: 'lvm', driver: 'lvm' }];
    this.hostId = options.hostId ?? 'stand-in-host';
    this.capacityGb = options.capacityGb ?? 100;
    this.capacityPushDelayMs = options.capacityPushDelayMs;
    this.port = options.port ?? 0;
    this.installModel();
  }

  static async start(options: StandInOptions = {}): Promise<StandInAgent> {
    const agent = new StandInAgent(options);
    await agent.listen();
    return agent;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Replaces the model's answer for one op (throw a KindlingError to reply with an error); gives back the one replaced, to put back. */
  handle(op: OpName, handler: Handler): Handler | undefined {
    const before = this.handlers.get(op);
    this.handlers.set(op, handler);
    return before;
  }

  /** How many times the work of the request with this id ran (a retry answered from its recorded outcome does not count). */
  executions(requestId: string): number {
    return this.runs.get(requestId) ?? 0;
  }

  /** Refuses the next `count` requests (hello aside) with BUSY, before any work or record. */
  refuseBusy(count: number, retryAfterMs: number): void {
    this.busy = { count, retryAfterMs };
  }

  /** Answers every upgrade with `status` (as the agent's edge does for a foreign Host, 421), or again normally (null). */
  refuseUpgrades(status: number | null): void {
    this.upgradeStatus = status;
  }

  /** The network dropping every link; the agent goes on (work under way finishes) and takes new ones. */
  cut(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  /** Sends an event frame to every session. */
  push(frame: EventFrame): void {
    const bytes = encode(frame);
    for (const ws of this.sockets) ws.send(bytes);
  }

  /** The agent process going away: every socket cut, nothing listening. */
  async stop(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Back on the same port, model intact (as a restarted agent with its index). */
  async listen(): Promise<void> {
    const server = createServer((_req, res) => res.writeHead(404).end());
    server.on('upgrade', (req, socket, head) => {
      if (req.url !== '/rpc') {
        socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
        return;
      }
      if (this.upgradeStatus !== null) {
        socket.end(`HTTP/1.1 ${this.upgradeStatus} Refused\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      if (this.token && req.headers.authorization !== `Bearer ${this.token}`) {
        socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  private accept(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.on('message', async (data) => {
      const { id, op, args, requestId } = decode(data as Buffer) as { id: number; op: string; args: Args; requestId?: string };
      this.requests.push({ id, op, args, ...(requestId === undefined ? {} : { requestId }) });
      if (op !== 'hello' && this.busy.count > 0) {
        this.busy.count--;
        const error = new BusyError('stand-in is busy', { retryAfterMs: this.busy.retryAfterMs });
        ws.send(encode({ id, ok: false, error: error.toInfo() }));
        return;
      }
      let outcome = requestId === undefined ? undefined : this.outcomes.get(requestId);
      if (!outcome) {
        outcome = this.run(op, args, requestId);
        if (requestId !== undefined) this.outcomes.set(requestId, outcome);
      }
      const settled = await outcome;
      ws.send(encode({ id, ...settled }));
      if (!settled.ok || !MUTATING_OPS.has(op as OpName)) return;
      if (this.capacityPushDelayMs === undefined) setImmediate(() => this.pushCapacity());
      else setTimeout(() => this.pushCapacity(), this.capacityPushDelayMs);
    });
  }

  private async run(op: string, args: Args, requestId: string | undefined): Promise<Outcome> {
    if (requestId !== undefined) this.runs.set(requestId, this.executions(requestId) + 1);
    try {
      const handler = this.handlers.get(op);
      if (!handler) throw new NotFoundError(`stand-in has no ${op}`);
      return { ok: true, result: await handler(args, requestId === undefined ? {} : { requestId }) };
    } catch (err) {
      return { ok: false, error: toErrorInfo(err instanceof KindlingError ? err : String(err)) };
    }
  }

  /** A backend's figures from the model: thick, `capacityGb` in all, its volumes' sizes taken. */
  stats(backend: string): BackendStats {
    const volumes = [...this.volumes.values()].filter((v) => v.backend === backend);
    const used = volumes.reduce((sum, v) => sum + v.size, 0);
    const info = this.backends.find((b) => b.name === backend);
    if (!info) throw new NotFoundError(`no backend named ${backend}`);
    return {
      backendName: backend,
      driver: info.driver,
      vendorName: 'stand-in',
      driverVersion: '0.0.0',
      storageProtocol: info.driver,
      totalCapacityGb: this.capacityGb,
      freeCapacityGb: this.capacityGb - used,
      provisionedCapacityGb: used,
      thinProvisioningSupport: false,
      thickProvisioningSupport: true,
      maxOverSubscriptionRatio: 1,
      reservedPercentage: 0,
      totalVolumes: volumes.length,
      totalSnapshots: [...this.snapshots.values()].filter((s) => s.backend === backend).length,
    };
  }

  private pushCapacity(): void {
    for (const { name } of this.backends) this.push({ event: 'capacity', resource: this.stats(name) });
  }

  private volume(id: unknown): VolumeRecord {
    const record = this.volumes.get(String(id));
    if (!record) throw new NotFoundError(`no volume ${String(id)}`);
    return record;
  }

  private saveVolume(record: VolumeRecord): VolumeRecord {
    this.volumes.set(record.id, record);
    this.push({ event: 'volume', resource: record });
    return record;
  }

  private saveSnapshot(record: SnapshotRecord): SnapshotRecord {
    this.snapshots.set(record.id, record);
    this.push({ event: 'snapshot', resource: record });
    return record;
  }

  newVolume(fields: Partial<VolumeRecord> & { backend: string; size: number }): VolumeRecord {
    const now = new Date().toISOString();
    return this.saveVolume({
      id: randomUUID(),
      name: null,
      description: null,
      status: 'available',
      metadata: {},
      createdAt: now,
      updatedAt: now,
      sourceVolId: null,
      snapshotId: null,
      location: {},
      error: null,
      ...fields,
    });
  }

  newSnapshot(volume: VolumeRecord, fields: Partial<SnapshotRecord> = {}): SnapshotRecord {
    const now = new Date().toISOString();
    return this.saveSnapshot({
      id: randomUUID(),
      backend: volume.backend,
      volumeId: volume.id,
      name: null,
      description: null,
      volumeSize: volume.size,
      status: 'available',
      createdAt: now,
      updatedAt: now,
      location: {},
      error: null,
      ...fields,
    });
  }

  private connect(volume: VolumeRecord, local: boolean, connector: Args): { volume: VolumeRecord; connection: ConnectionRecord } {
    const connection: ConnectionRecord = {
      id: randomUUID(),
      backend: volume.backend,
      volumeId: volume.id,
      connectorInfo: local ? { host: 'stand-in' } : connector,
      connectionInfo: { driverVolumeType: local ? 'local' : 'nfs', data: {} },
      path: local ? `/dev/stand-in/${volume.id}` : null,
      attached: local,
      createdAt: new Date().toISOString(),
    };
    this.connections.set(connection.id, connection);
    this.push({ event: 'connection', resource: connection });
    return { volume: this.saveVolume({ ...volume, status: 'in-use' }), connection };
  }

  private disconnect(connection: ConnectionRecord): { volume: VolumeRecord; connection: ConnectionRecord } {
    this.connections.delete(connection.id);
    const gone = { ...connection, attached: false };
    this.push({ event: 'connection.deleted', resource: gone });
    const left = [...this.connections.values()].some((c) => c.volumeId === connection.volumeId);
    const volume = this.volume(connection.volumeId);
    return { volume: this.saveVolume({ ...volume, status: left ? 'in-use' : 'available' }), connection: gone };
  }

  private installModel(): void {
    const h = (op: OpName, handler: Handler): void => void this.handlers.set(op, handler);
    h('hello', () => ({ protocolVersion: PROTOCOL_VERSION, agentVersion: '0.0.0-stand-in', hostId: this.hostId, backends: this.backends }));
    h('backend.stats', (a) => this.stats(String(a.backend)));
    h('volume.create', (a) => this.newVolume(a as Partial<VolumeRecord> & { backend: string; size: number }));
    h('volume.get', (a) => this.volume(a.id));
    h('volume.list', (a) => {
      const { items: volumes, nextCursor } = pageOf(
        [...this.volumes.values()].filter(
          (v) => (a.backend === undefined || v.backend === a.backend) && (a.id === undefined || v.id === a.id) && (a.name === undefined || v.name === a.name),
        ),
        a,
      );
      const ids = new Set(volumes.map((v) => v.id));
      return {
        volumes,
        snapshots: [...this.snapshots.values()].filter((s) => ids.has(s.volumeId)),
        connections: [...this.connections.values()].filter((c) => ids.has(c.volumeId)),
        nextCursor,
      };
    });
    h('volume.delete', (a) => {
      const volume = this.volume(a.id);
      if ([...this.snapshots.values()].some((s) => s.volumeId === volume.id)) throw new ConflictError('volume has snapshots');
      this.volumes.delete(volume.id);
      const gone = { ...volume, status: 'deleted' as const };
      this.push({ event: 'volume', resource: gone });
      return gone;
    });
    h('volume.extend', (a) => this.saveVolume({ ...this.volume(a.id), size: a.size as number }));
    h('volume.resetState', (a) => this.saveVolume({ ...this.volume(a.id), status: 'available', error: null }));
    h('volume.clone', (a) => {
      const source = this.volume(a.id);
      return this.newVolume({ backend: source.backend, size: source.size, sourceVolId: source.id, ...a, id: randomUUID() });
    });
    h('volume.revert', (a) => this.volume(a.id));
    h('volume.attach', (a) => this.connect(this.volume(a.id), true, {}));
    h('volume.connect', (a) => this.connect(this.volume(a.id), false, a.connector as Args));
    h('volume.detach', (a) => {
      const local = [...this.connections.values()].find((c) => c.volumeId === a.id && c.attached);
      if (!local) throw new NotFoundError('not attached');
      return this.disconnect(local);
    });
    h('connection.list', (a) => [...this.connections.values()].filter((c) => c.volumeId === a.volumeId));
    h('connection.delete', (a) => {
      const connection = this.connections.get(String(a.id));
      if (!connection) throw new NotFoundError(`no connection ${String(a.id)}`);
      return this.disconnect(connection);
    });
    h('connection.extend', (a) => {
      const connection = this.connections.get(String(a.id));
      if (!connection) throw new NotFoundError(`no connection ${String(a.id)}`);
      return { sizeBytes: this.volume(connection.volumeId).size * 2 ** 30 };
    });
    h('snapshot.create', (a) => this.newSnapshot(this.volume(a.volumeId), a as Partial<SnapshotRecord>));
    h('snapshot.get', (a) => {
      const snapshot = this.snapshots.get(String(a.id));
      if (!snapshot) throw new NotFoundError(`no snapshot ${String(a.id)}`);
      return snapshot;
    });
    h('snapshot.list', (a) => {
      const snapshots = [...this.snapshots.values()].filter(
        (s) => (a.volumeId === undefined || s.volumeId === a.volumeId) && (a.backend === undefined || s.backend === a.backend) && (a.name === undefined || s.name === a.name),
      );
      if (a.limit === undefined) return snapshots;
      const { items, nextCursor } = pageOf(snapshots, a);
      return { snapshots: items, nextCursor };
    });
    h('snapshot.delete', (a) => {
      const snapshot = this.snapshots.get(String(a.id));
      if (!snapshot) throw new NotFoundError(`no snapshot ${String(a.id)}`);
      this.snapshots.delete(snapshot.id);
      const gone = { ...snapshot, status: 'deleted' as const };
      this.push({ event: 'snapshot', resource: gone });
      return gone;
    });
    h('snapshot.createVolume', (a) => {
      const snapshot = this.snapshots.get(String(a.id));
      if (!snapshot) throw new NotFoundError(`no snapshot ${String(a.id)}`);
      return this.newVolume({ backend: snapshot.backend, size: snapshot.volumeSize, snapshotId: snapshot.id, ...a, id: randomUUID() });
    });
    // Group snapshots: each member a snapshot at once, the group a record of their ids.
    h('group.create', (a) => {
      const volumeIds = a.volumeIds as string[];
      const snapshotIds = volumeIds.map((id) => this.newSnapshot(this.volume(id), { name: (a.name as string | undefined) ?? null }).id);
      const now = new Date().toISOString();
      const group = { id: randomUUID(), name: (a.name as string | undefined) ?? null, status: 'available' as const, volumeIds, snapshotIds, createdAt: now, updatedAt: now, error: null };
      this.groups.set(group.id, group);
      return group;
    });
    h('group.delete', (a) => {
      const group = this.groups.get(String(a.id));
      if (!group) throw new NotFoundError(`no group snapshot ${String(a.id)}`);
      for (const id of group.snapshotIds) this.snapshots.delete(id);
      this.groups.delete(group.id);
      return { ...group, status: 'deleted' as const };
    });
    // Copies between agents: any URL and credential are taken, and the copy is made at once.
    h('transfer.open', (a) => {
      const snapshot = a.snapshotId === undefined ? undefined : this.snapshots.get(String(a.snapshotId));
      const size = snapshot ? snapshot.volumeSize : this.volume(a.volumeId).size;
      const source = snapshot ? { kind: 'snapshot', id: snapshot.id } : { kind: 'volume', id: String(a.volumeId) };
      const expiresAt = new Date(Date.now() + 300_000).toISOString();
      return { source, url: `http://127.0.0.1:9/transfer/${randomUUID()}`, credential: 'c'.repeat(43), sizeBytes: size * 2 ** 30, size, expiresAt };
    });
    h('volume.copyFrom', ({ source, ...a }) => {
      const size = (a.size as number | undefined) ?? Math.ceil((source as { sizeBytes: number }).sizeBytes / 2 ** 30);
      return this.newVolume({ ...(a as Partial<VolumeRecord>), backend: String(a.backend), size, id: randomUUID() });
    });
    h('kv.get', (a) => ({ value: this.kv.get(String(a.key)) ?? null }));
    h('kv.set', (a) => {
      this.kv.set(String(a.key), String(a.value));
      return { ok: true };
    });
    h('kv.delete', (a) => ({ existed: this.kv.delete(String(a.key)) }));
  }
}
