import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
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
import { BufferPool, CHUNK, StreamDigest, endRecord } from './wire.js';
import { Tickets, type TransferSource } from './tickets.js';

/** Test-only stall: the source stops after its first data record until the target goes away (crash tests). */
const STALL_ENV = 'KINDLING_TRANSFER_STALL';

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

  /** Sends one presented credential's read on `res` (UNAUTHORIZED, nothing sent, unless it is open, unused and unexpired). */
  serve(transferId: string, credential: string, res: ServerResponse): void {
    const source = this.tickets.take(transferId, credential);
    const out = new Outlet(res);
    const locked = source.kind === 'volume' ? [source.volumeId] : [source.volumeId, source.snapshotId];
    this.ctx.locks
      .with(locked, () => this.send(source, out))
      .then(
        () => out.end(),
        (err: unknown) => {
          log.warn({ transferId, ...source }, `transfer ${transferId} ended early: ${messageOf(err)}`);
          out.fail();
        },
      );
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

  private async send(source: TransferSource, out: Outlet): Promise<void> {
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

/** How far the source reads ahead of what the socket has taken: the disk reads while the network sends. */
const READ_AHEAD = 8 * CHUNK;

/**
 * The response, written from inside the lock and the driver's reader, straight to the socket with its
 * backpressure (web streams in between, hono's or Node's Readable.toWeb, cost several times the time).
 */
class Outlet {
  /** Resolves once the response is closed: sent whole, or the target went away. */
  readonly gone: Promise<void>;

  constructor(private readonly res: ServerResponse) {
    this.gone = new Promise((resolve) => res.once('close', resolve));
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
  }

  /** Resolves once the socket takes more; rejects once the target went away. `sent` runs once the socket took `bytes`. */
  async put(bytes: Buffer, sent?: () => void): Promise<void> {
    if (this.res.destroyed) throw new UnavailableError('the target agent went away');
    this.res.write(bytes, sent);
    if (this.res.writableLength > READ_AHEAD) await Promise.race([once(this.res, 'drain'), this.gone]);
    if (this.res.destroyed) throw new UnavailableError('the target agent went away');
  }

  end(): void {
    this.res.end();
  }

  /** Cuts the response short: without its end record, the target knows the copy is incomplete. */
  fail(): void {
    this.res.destroy();
  }
}

/** The data ranges cut into pieces of at most CHUNK bytes, in order. */
async function* pieces(reader: ContentReader): AsyncGenerator<{ at: number; length: number }> {
  for await (const range of reader.ranges()) {
    for (let at = range.offset; at < range.offset + range.length; at += CHUNK) {
      yield { at, length: Math.min(CHUNK, range.offset + range.length - at) };
    }
  }
}

async function stream(reader: ContentReader, out: Outlet): Promise<void> {
  const digest = new StreamDigest();
  const meter = progressMeter(reader.sizeBytes, 'transfer.open');
  const zeros = Buffer.alloc(CHUNK);
  // Enough for what the socket holds and the two pieces being read and sent.
  const pool = new BufferPool(READ_AHEAD / CHUNK + 3);
  let sent = 0;
  const read = async ({ at, length }: { at: number; length: number }) => {
    const data = pool.take(length);
    await reader.read(at, data);
    return { at, data };
  };
  // Each piece is read while the one before it is sent.
  let pending: Promise<{ at: number; data: Buffer }> | null = null;
  for await (const piece of pieces(reader)) {
    const reading = read(piece);
    // Its failure is thrown when it is awaited below; until then it must not count as unhandled.
    reading.catch(() => undefined);
    if (pending) await send(await pending);
    pending = reading;
  }
  if (pending) await send(await pending);
  await out.put(endRecord(digest.end()));
  meter(reader.sizeBytes);

  async function send({ at, data }: { at: number; data: Buffer }): Promise<void> {
    meter(at);
    // Zero blocks stored as data (an allocated raw file, a thick volume) are not sent either.
    if (data.equals(zeros.subarray(0, data.length))) return pool.give(data);
    await out.put(digest.add(at, data));
    await out.put(data, () => pool.give(data));
    if (++sent === 1 && process.env[STALL_ENV] === 'after-first') await out.gone;
  }
}
