import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  ConflictError,
  NotFoundError,
  type AttachmentResult,
  type ConnectionRecord,
  type ConnectorInfo,
  type ParsedOpArgs,
  type VolumeRecord,
} from '@kindling/protocol';
import type { Attachment } from '../drivers/driver.js';
import { requestMark } from '../request-context.js';
import { volumeRef, type ServiceContext } from './context.js';
import { requireCapability } from './capabilities.js';
import { now } from './lifecycle.js';
import { connectionPage } from './listing.js';
import { READABLE, requireStatus, volumePhase } from './status.js';
import type { VolumeService } from './volumes.js';

/** Local attachments (this host) and connections for other hosts' connectors; a connected volume is in-use. */
export class ConnectionService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly volumes: VolumeService,
  ) {}

  get(id: string): ConnectionRecord {
    const connection = this.ctx.index.getConnection(id);
    if (!connection) throw new NotFoundError(`no connection ${id}`, { id });
    return connection;
  }

  list(args: ParsedOpArgs<'connection.list'>): ReturnType<typeof connectionPage> {
    this.volumes.get(args.volumeId);
    return connectionPage(this.ctx.index, args);
  }

  async attach(volumeId: string): Promise<AttachmentResult> {
    return this.ctx.locks.with([volumeId], async () => {
      const volume = this.volumes.get(volumeId);
      const driver = this.volumes.driverOf(volume);
      requireCapability(driver, 'attach', 'local attach');
      // Idempotent per host: a retry (or a second caller) gets the attachment this host already has.
      // A driver that snapshots volumes live moves their writes to a new file: it is asked where now.
      const local = this.ctx.index.connectionsOf(volumeId).find((c) => c.attached);
      if (local && !driver.snapshotsWhenServed) return { volume, connection: local };
      if (local) return this.current(volume, local, await driver.attach(volumeRef(volume)));
      requireStatus(volume, READABLE, 'attach volume');
      const attachment = await driver.attach(volumeRef(volume));
      return this.record(volume, { host: this.ctx.hostname }, attachment, true);
    });
  }

  async detach(volumeId: string): Promise<AttachmentResult> {
    return this.ctx.locks.with([volumeId], async () => {
      const volume = this.volumes.get(volumeId);
      const connections = this.ctx.index.connectionsOf(volumeId);
      const local = connections.find((c) => c.attached);
      if (!local) throw new ConflictError(`volume ${volumeId} is not attached on this host`, { id: volumeId });
      await this.volumes.driverOf(volume).detach(volumeRef(volume), local);
      return this.forget(volume, local, connections);
    });
  }

  async connect(volumeId: string, connector: ConnectorInfo): Promise<AttachmentResult> {
    return this.ctx.locks.with([volumeId], async () => {
      const volume = this.volumes.get(volumeId);
      const driver = this.volumes.driverOf(volume);
      requireCapability(driver, 'connect', 'connections to other hosts');
      requireStatus(volume, READABLE, 'connect volume');
      driver.validateConnector(connector);
      const others = this.ctx.index.connectionsOf(volumeId);
      const attachment = await driver.connect(volumeRef(volume), connector, others);
      return this.record(volume, connector, attachment, false);
    });
  }

  async disconnect(connectionId: string): Promise<AttachmentResult> {
    const { volumeId } = this.get(connectionId);
    return this.ctx.locks.with([volumeId], async () => {
      const connection = this.get(connectionId);
      const volume = this.volumes.get(volumeId);
      const connections = this.ctx.index.connectionsOf(volumeId);
      const others = connections.filter((c) => c.id !== connectionId);
      const driver = this.volumes.driverOf(volume);
      if (connection.attached) await driver.detach(volumeRef(volume), connection);
      else await driver.disconnect(volumeRef(volume), connection, others);
      return this.forget(volume, connection, connections);
    });
  }

  /** The size in bytes the connected host sees now, for growing its view after `volume.extend`. */
  async extend(connectionId: string): Promise<{ sizeBytes: number }> {
    const connection = this.get(connectionId);
    const volume = this.volumes.get(connection.volumeId);
    return { sizeBytes: await this.volumes.driverOf(volume).connectionSize(volumeRef(volume), connection) };
  }

  /** The attachment as the driver gives it now, written over the record when it moved. */
  private async current(volume: VolumeRecord, local: ConnectionRecord, now: Attachment): Promise<AttachmentResult> {
    if (local.path === now.path && isDeepStrictEqual(local.connectionInfo, now.connectionInfo)) return { volume, connection: local };
    const moved: ConnectionRecord = { ...local, path: now.path, connectionInfo: now.connectionInfo };
    await this.ctx.index.putConnection(moved, volume);
    this.ctx.events.publish({ event: 'connection', resource: moved });
    return { volume, connection: moved };
  }

  private async record(
    volume: VolumeRecord,
    connectorInfo: ConnectorInfo,
    attachment: Attachment,
    attached: boolean,
  ): Promise<AttachmentResult> {
    const connection: ConnectionRecord = {
      id: randomUUID(),
      backend: volume.backend,
      volumeId: volume.id,
      connectorInfo,
      connectionInfo: attachment.connectionInfo,
      path: attachment.path,
      attached,
      createdAt: now(),
    };
    const inUse: VolumeRecord = { ...volume, status: 'in-use', updatedAt: now() };
    await this.ctx.index.putConnection(connection, inUse, requestMark(connection));
    this.ctx.events.publish({ event: 'connection', resource: connection });
    this.volumes.publish(inUse);
    return { volume: inUse, connection };
  }

  private async forget(
    volume: VolumeRecord,
    connection: ConnectionRecord,
    connections: ConnectionRecord[],
  ): Promise<AttachmentResult> {
    const stillConnected = connections.some((c) => c.id !== connection.id);
    // An error (an extend that failed while connected) is kept: disconnecting does not mend the volume.
    const status = volumePhase(volume.status) === 'settled' ? (stillConnected ? 'in-use' : 'available') : volume.status;
    const after: VolumeRecord = { ...volume, status, updatedAt: now() };
    // The request's mark goes with the change (here and in record): a retry after a crash answers from it.
    await this.ctx.index.deleteConnection(connection, after, requestMark(connection));
    const gone = { ...connection, attached: false };
    this.ctx.events.publish({ event: 'connection.deleted', resource: gone });
    this.volumes.publish(after);
    return { volume: after, connection: gone };
  }
}
