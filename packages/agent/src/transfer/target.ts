import {
  BackendError,
  GIB,
  KindlingError,
  UnauthorizedError,
  UnavailableError,
  UnsupportedError,
  messageOf,
  type ParsedOpArgs,
  type VolumeRecord,
} from '@kindling/protocol';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { ContentSink } from '../drivers/driver.js';
import { progressMeter } from '../progress.js';
import { volumeRef, type ServiceContext } from '../service/context.js';
import type { VolumeService } from '../service/volumes.js';
import { BufferPool, StreamDigest, readRecords } from './wire.js';

type Source = ParsedOpArgs<'volume.copyFrom'>['source'];

/** Writes of received ranges running at once: the disk writes while the network receives. */
const WRITES_IN_FLIGHT = 4;

/** Waits for one of the agent's copy slots; the returned function gives it back. */
export type CopySlot = () => Promise<() => void>;

/**
 * The target side of a copy between agents (`volume.copyFrom`): a new volume, `creating` under its
 * temporary name, filled from the source agent's stream, checked against the source's digest, then
 * flushed and published by the driver as any create; on any failure the record ends `error` and the
 * temporary files are removed (by the driver, or by recovery after a crash).
 */
export class TransferTargetService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly volumes: VolumeService,
    private readonly slot: CopySlot,
  ) {}

  async copyFrom(args: ParsedOpArgs<'volume.copyFrom'>, id: string): Promise<VolumeRecord> {
    const driver = this.ctx.backends.usable(args.backend);
    if (!driver.writeVolume) {
      throw new UnsupportedError(`backend ${driver.name} (${driver.driver}) cannot receive copies from another agent yet`, { feature: 'transfer' });
    }
    const size = this.volumes.sizeFrom(args.size, Math.ceil(args.source.sizeBytes / GIB), 'source');
    const record = this.volumes.draft(id, args.backend, { ...args, size });
    return this.volumes.build(record, () => driver.writeVolume!(volumeRef(record), args.source.sizeBytes, (sink) => this.pull(args.source, sink)));
  }

  private async pull(source: Source, sink: ContentSink): Promise<void> {
    const release = await this.slot();
    try {
      await pull(source, sink);
    } finally {
      release();
    }
  }
}

const IDLE_MS = 300_000;

/**
 * GET of the source's transfer URL with node's http(s) client: its response streams Buffers straight from
 * the socket (fetch's web stream cost a third of the target's time in copies and promise turns).
 */
function get(url: URL, credential: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsGet : httpGet)(url, { headers: { authorization: `Bearer ${credential}` } }, resolve);
    request.once('error', reject);
    // A source that stops sending (stalled, or its host gone without a reset) fails the copy, as fetch's body timeout did.
    request.setTimeout(IDLE_MS, () => request.destroy(new Error(`no data for ${IDLE_MS / 1000} s`)));
  });
}

async function text(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function pull(source: Source, sink: ContentSink): Promise<void> {
  const url = new URL(source.url);
  const from = url.host;
  let response: IncomingMessage;
  try {
    response = await get(url, source.credential);
  } catch (err) {
    throw new UnavailableError(`cannot reach the source agent at ${from}: ${messageOf(err)}`, { storageChanged: false });
  }
  if (response.statusCode === 401) {
    response.resume();
    throw new UnauthorizedError(`the source agent at ${from} refused the transfer credential: it is used, expired or was never issued`, {
      storageChanged: false,
    });
  }
  if (response.statusCode !== 200) {
    throw new BackendError(`the source agent at ${from} answered ${response.statusCode}: ${(await text(response)).slice(0, 500)}`, { storageChanged: false });
  }
  try {
    await receive(response, source, sink, from);
  } finally {
    // A failed copy stops reading: the source sees the connection close and ends its read.
    response.destroy();
  }
}

async function receive(body: IncomingMessage, source: Source, sink: ContentSink, from: string): Promise<void> {
  const pool = new BufferPool(WRITES_IN_FLIGHT + 2);
  const digest = new StreamDigest();
  const meter = progressMeter(source.sizeBytes);
  let sent: Buffer | null = null;
  // Each write's failure is kept and thrown in turn; none is left running once pull returns or throws.
  const writes: Promise<void>[] = [];
  let failed: unknown = null;
  try {
    for await (const record of readRecords(body, pool)) {
      if (record.kind === 'end') {
        sent = record.digest;
        break;
      }
      if (record.offset + record.data.length > source.sizeBytes) {
        throw new BackendError(`the source sent data at ${record.offset}, beyond the ${source.sizeBytes} bytes it announced`);
      }
      digest.add(record.offset, record.data);
      const end = record.offset + record.data.length;
      const { data } = record;
      writes.push(
        sink.write(record.offset, data).then(
          () => {
            pool.give(data);
            meter(end);
          },
          (err: unknown) => void (failed ??= err),
        ),
      );
      if (writes.length >= WRITES_IN_FLIGHT) await writes.shift();
      if (failed) throw failed;
    }
  } catch (err) {
    await Promise.all(writes);
    if (err instanceof KindlingError) throw err;
    throw new BackendError(`the stream from the source agent at ${from} broke: ${messageOf(err)}`);
  }
  await Promise.all(writes);
  if (failed) throw failed;
  if (!sent) throw new BackendError(`the stream from the source agent at ${from} ended before its end record (the source stopped?)`);
  if (!digest.end().equals(sent)) throw new BackendError(`the copy from ${from} does not match the checksum the source sent`);
  meter(source.sizeBytes);
}
