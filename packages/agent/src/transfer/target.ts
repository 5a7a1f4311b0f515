import {
  BackendError,
  GIB,
  UnauthorizedError,
  UnavailableError,
  UnsupportedError,
  messageOf,
  type ParsedOpArgs,
  type VolumeRecord,
} from '@kindling/protocol';
import type { ContentSink } from '../drivers/driver.js';
import { progressMeter } from '../progress.js';
import { volumeRef, type ServiceContext } from '../service/context.js';
import type { VolumeService } from '../service/volumes.js';
import { StreamDigest, readRecords } from './wire.js';

type Source = ParsedOpArgs<'volume.copyFrom'>['source'];

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

async function pull(source: Source, sink: ContentSink): Promise<void> {
  const from = new URL(source.url).host;
  let response: Response;
  try {
    response = await fetch(source.url, { headers: { authorization: `Bearer ${source.credential}` }, redirect: 'error' });
  } catch (err) {
    throw new UnavailableError(`cannot reach the source agent at ${from}: ${messageOf(err)}`, { storageChanged: false });
  }
  if (response.status === 401) {
    throw new UnauthorizedError(`the source agent at ${from} refused the transfer credential: it is used, expired or was never issued`, {
      storageChanged: false,
    });
  }
  if (!response.ok || !response.body) {
    throw new BackendError(`the source agent at ${from} answered ${response.status}: ${(await response.text()).slice(0, 500)}`, { storageChanged: false });
  }
  const digest = new StreamDigest();
  const meter = progressMeter(source.sizeBytes);
  let sent: Buffer | null = null;
  try {
    for await (const record of readRecords(response.body)) {
      if (record.kind === 'end') {
        sent = record.digest;
        break;
      }
      if (record.offset + record.data.length > source.sizeBytes) {
        throw new BackendError(`the source sent data at ${record.offset}, beyond the ${source.sizeBytes} bytes it announced`);
      }
      digest.add(record.offset, record.data);
      await sink.write(record.offset, record.data);
      meter(record.offset + record.data.length);
    }
  } catch (err) {
    if (err instanceof BackendError) throw err;
    throw new BackendError(`the stream from the source agent at ${from} broke: ${messageOf(err)}`);
  }
  if (!sent) throw new BackendError(`the stream from the source agent at ${from} ended before its end record (the source stopped?)`);
  if (!digest.end().equals(sent)) throw new BackendError(`the copy from ${from} does not match the checksum the source sent`);
  meter(source.sizeBytes);
}
