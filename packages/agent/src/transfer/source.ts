import { PassThrough, Readable } from 'node:stream';
import {
  GIB,
  NotFoundError,
  UnavailableError,
  UnsupportedError,
  messageOf,
  type ParsedOpArgs,
  type TransferTicket,
} from '@kindling/protocol';
import type { ContentReader, Driver } from '../drivers/driver.js';
import { log } from '../log.js';
import { forSubject, progressMeter } from '../progress.js';
import { refuseTornCopy } from '../service/capabilities.js';
import { snapshotRef, volumeRef, type ServiceContext } from '../service/context.js';
import { READABLE, SNAPSHOT_READY, requireStatus } from '../service/status.js';
import { CHUNK, StreamDigest, endRecord } from './wire.js';
import { Tickets, type TransferSource } from './tickets.js';

/** Test-only stall: the source stops after its first data record until the target goes away (crash tests). */
const STALL_ENV = 'KINDLING_TRANSFER_STALL';
/** Bytes the source reads ahead of a slow target. */
const HIGH_WATER = 4 * CHUNK;

/**
 * The source side of a copy between agents: `transfer.open` checks the resource and mints a
 * credential for one read of it; the transfer route serves that read under the volume's lock (the
 * content stays still: no operation of this agent changes it, and an in-use NFS volume, which a
 * connected host may write, is refused as its snapshots are), skipping holes and zero blocks.
 */
export class TransferSourceService {
  readonly tickets = new Tickets();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly baseUrl: () => string,
  ) {}

  open(args: ParsedOpArgs<'transfer.open'>): TransferTicket {
    const { source, sizeBytes } = this.check(
      args.snapshotId !== undefined
        ? { kind: 'snapshot', snapshotId: args.snapshotId, volumeId: this.snapshotRecord(args.snapshotId).volumeId }
        : { kind: 'volume', volumeId: args.volumeId! },
    );
    const { id, credential, expires } = this.tickets.mint(source);
    return {
      source: source.kind === 'volume' ? { kind: 'volume', id: source.volumeId } : { kind: 'snapshot', id: source.snapshotId },
      url: `${this.baseUrl()}/transfer/${id}`,
      credential,
      sizeBytes,
      size: Math.ceil(sizeBytes / GIB),
      expiresAt: new Date(expires).toISOString(),
    };
  }

  /** The stream for one presented credential (UNAUTHORIZED unless it is open, unused and unexpired). */
  serve(transferId: string, credential: string): ReadableStream<Uint8Array> {
    const source = this.tickets.take(transferId, credential);
    const out = new PassThrough({ highWaterMark: HIGH_WATER });
    const locked = source.kind === 'volume' ? [source.volumeId] : [source.volumeId, source.snapshotId];
    this.ctx.locks
      .with(locked, () => this.send(source, out))
      .then(
        () => out.end(),
        (err: unknown) => {
          log.warn({ transferId, ...source }, `transfer ${transferId} ended early: ${messageOf(err)}`);
          out.destroy(err instanceof Error ? err : new Error(messageOf(err)));
        },
      );
    return Readable.toWeb(out) as ReadableStream<Uint8Array>;
  }

  /** Checked again under the lock: the resource may have changed since its credential was minted. */
  private check(source: TransferSource): { source: TransferSource; sizeBytes: number; driver: Driver } {
    const volume = this.ctx.index.getVolume(source.volumeId);
    if (!volume) throw new NotFoundError(`no volume ${source.volumeId}`, { id: source.volumeId });
    const driver = this.ctx.backends.usable(volume.backend);
    if (source.kind === 'snapshot') {
      const snapshot = this.snapshotRecord(source.snapshotId);
      requireStatus(snapshot, SNAPSHOT_READY, 'copy snapshot');
      if (!driver.readSnapshot) throw unsupported(driver);
      return { source, sizeBytes: snapshot.volumeSize * GIB, driver };
    }
    requireStatus(volume, READABLE, 'copy volume');
    if (!driver.readVolume) throw unsupported(driver);
    refuseTornCopy(driver, volume, 'copy');
    return { source, sizeBytes: volume.size * GIB, driver };
  }

  private snapshotRecord(id: string) {
    const snapshot = this.ctx.index.getSnapshot(id);
    if (!snapshot) throw new NotFoundError(`no snapshot ${id}`, { id });
    return snapshot;
  }

  private async send(source: TransferSource, out: PassThrough): Promise<void> {
    const { driver } = this.check(source);
    const volume = this.ctx.index.getVolume(source.volumeId)!;
    const subject = source.kind === 'volume' ? { kind: 'volume' as const, id: source.volumeId } : { kind: 'snapshot' as const, id: source.snapshotId };
    const pump = (reader: ContentReader) => forSubject({ ...subject, publish: this.ctx.events.progress }, () => stream(reader, out));
    if (source.kind === 'volume') await driver.readVolume!(volumeRef(volume), pump);
    else await driver.readSnapshot!(snapshotRef(this.snapshotRecord(source.snapshotId)), volumeRef(volume), pump);
  }
}

const unsupported = (driver: Driver): UnsupportedError =>
  new UnsupportedError(`backend ${driver.name} (${driver.driver}) cannot be copied to another agent yet`, { feature: 'transfer' });

/** Resolves once `out` takes more (or rejects once the target went away). */
async function put(out: PassThrough, bytes: Buffer): Promise<void> {
  if (out.destroyed) throw new UnavailableError('the target agent went away');
  if (out.write(bytes)) return;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      if (out.destroyed) reject(new UnavailableError('the target agent went away'));
      else resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

async function stream(reader: ContentReader, out: PassThrough): Promise<void> {
  const digest = new StreamDigest();
  const meter = progressMeter(reader.sizeBytes, 'transfer.open');
  const zeros = Buffer.alloc(CHUNK);
  let sent = 0;
  for await (const range of reader.ranges()) {
    for (let at = range.offset; at < range.offset + range.length; at += CHUNK) {
      const data = Buffer.allocUnsafe(Math.min(CHUNK, range.offset + range.length - at));
      await reader.read(at, data);
      meter(at);
      // Zero blocks stored as data (an allocated raw file, a thick volume) are not sent either.
      if (data.equals(zeros.subarray(0, data.length))) continue;
      await put(out, digest.add(at, data));
      await put(out, data);
      if (++sent === 1 && process.env[STALL_ENV] === 'after-first') await new Promise((resolve) => out.once('close', resolve));
    }
  }
  await put(out, endRecord(digest.end()));
  meter(reader.sizeBytes);
}
