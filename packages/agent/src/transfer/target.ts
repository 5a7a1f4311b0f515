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
import type { ContentSink } from '../drivers/driver.js';
import { progressMeter } from '../progress.js';
import { volumeRef, type ServiceContext } from '../service/context.js';
import type { VolumeService } from '../service/volumes.js';
import { StreamDigest, readRecords } from './wire.js';

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
  // Each write's failure is kept and thrown in turn; none is left running once pull returns or throws.
  const writes: Promise<void>[] = [];
  let failed: unknown = null;
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
      const end = record.offset + record.data.length;
      writes.push(sink.write(record.offset, record.data).then(() => meter(end), (err: unknown) => void (failed ??= err)));
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
