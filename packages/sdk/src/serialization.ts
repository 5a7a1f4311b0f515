/**
 * Kindling's serialized shape, `schemaVersion: 1`: what `x.json`, `x.dump` and `agent.load()` speak.
 *
 * Every object carries `schemaVersion` and `kind`, then the agent's record of the resource, field for
 * field (protocol's VolumeRecord / SnapshotRecord / ConnectionRecord: times are the agent's ISO-8601
 * strings, kept verbatim so sub-second precision survives; the backend goes by name):
 *
 *   VolumeJson      { schemaVersion: 1, kind: 'volume', ...VolumeRecord }
 *   VolumeDump      VolumeJson & { snapshots: SnapshotRecord[], connections: ConnectionRecord[] }
 *   SnapshotJson    { schemaVersion: 1, kind: 'snapshot', ...SnapshotRecord, volume: VolumeRecord }
 *   ConnectionJson  { schemaVersion: 1, kind: 'connection', ...ConnectionRecord, volume: VolumeRecord }
 *
 * Relations go by id (`volumeId`, the backend's name); a volume's snapshots and connections are
 * inlined only by `dump`. A snapshot or connection does carry its volume's record: it cannot exist
 * without it (`snap.volume` is synchronous), and, as in cinderlib, a controller ships `conn.json` alone
 * to the node that attaches. `agent.dump()` is a VolumeDump[]; `load` takes any of these, an array of
 * them, or their JSON text.
 */
import {
  InvalidArgumentError,
  isObject,
  messageOf,
  type ConnectionRecord,
  type SnapshotRecord,
  type VolumeRecord,
} from '@kindling/protocol';

export const SCHEMA_VERSION = 1;

interface Envelope<K extends string> {
  schemaVersion: typeof SCHEMA_VERSION;
  kind: K;
}
export type VolumeJson = Envelope<'volume'> & VolumeRecord;
export type VolumeDump = VolumeJson & { snapshots: SnapshotRecord[]; connections: ConnectionRecord[] };
export type SnapshotJson = Envelope<'snapshot'> & SnapshotRecord & { volume: VolumeRecord };
export type ConnectionJson = Envelope<'connection'> & ConnectionRecord & { volume: VolumeRecord };
export type Serialized = VolumeJson | VolumeDump | SnapshotJson | ConnectionJson;

declare const serializedAs: unique symbol;
/**
 * The JSON text of `T` (what `jsons`/`dumps` give): a plain string at run time, typed so that
 * `agent.load(vol.dumps)` is a Volume to the compiler too. Any other string loads as `Resource | Resource[]`.
 */
export type SerializedText<T extends Serialized> = string & { readonly [serializedAs]?: T };

/** The record fields an object mirrors besides its identity (id, backend, parent) and status. */
export const VOLUME_FIELDS = [
  'name',
  'description',
  'size',
  'metadata',
  'createdAt',
  'updatedAt',
  'sourceVolId',
  'snapshotId',
  'location',
  'error',
] as const satisfies readonly (keyof VolumeRecord)[];
export const SNAPSHOT_FIELDS = [
  'name',
  'description',
  'volumeSize',
  'createdAt',
  'updatedAt',
  'location',
  'error',
] as const satisfies readonly (keyof SnapshotRecord)[];
export const CONNECTION_FIELDS = [
  'connectorInfo',
  'connectionInfo',
  'path',
  'attached',
  'createdAt',
] as const satisfies readonly (keyof ConnectionRecord)[];

export function pick<T, K extends keyof T>(from: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const key of keys) out[key] = from[key];
  return out;
}

type FieldType = 'string' | 'number' | 'boolean' | 'object';
function expectFields(x: unknown, what: string, spec: Record<string, FieldType>): Record<string, unknown> {
  if (!isObject(x)) throw new InvalidArgumentError(`${what} must be an object`);
  for (const [field, type] of Object.entries(spec)) {
    const value = x[field];
    if (type === 'object' ? !isObject(value) : typeof value !== type) {
      throw new InvalidArgumentError(`${what} needs ${field} (${type})`, { field });
    }
  }
  return x;
}

const checkVolume = (x: unknown, what: string): Record<string, unknown> =>
  expectFields(x, what, { id: 'string', backend: 'string', size: 'number', status: 'string', metadata: 'object', createdAt: 'string' });
const checkSnapshot = (x: unknown, what: string): Record<string, unknown> =>
  expectFields(x, what, { id: 'string', backend: 'string', volumeId: 'string', status: 'string', createdAt: 'string' });
const checkConnection = (x: unknown, what: string): Record<string, unknown> =>
  expectFields(x, what, { id: 'string', volumeId: 'string', connectorInfo: 'object', connectionInfo: 'object', attached: 'boolean' });

function checkChildren(items: unknown, parentId: string, what: string, check: typeof checkSnapshot): void {
  if (!Array.isArray(items)) throw new InvalidArgumentError(`${what} must be an array`);
  for (const item of items) {
    if (check(item, what).volumeId !== parentId) throw new InvalidArgumentError(`${what} holds a record of another volume`);
  }
}

function checkItem(x: unknown): Serialized {
  if (!isObject(x)) throw new InvalidArgumentError('a serialized Kindling resource must be an object');
  if (x.schemaVersion !== SCHEMA_VERSION) {
    throw new InvalidArgumentError(`unsupported schemaVersion ${String(x.schemaVersion)}; this SDK reads ${SCHEMA_VERSION}`);
  }
  switch (x.kind) {
    case 'volume': {
      const id = checkVolume(x, 'a volume').id as string;
      if ('snapshots' in x || 'connections' in x) {
        checkChildren(x.snapshots, id, 'a volume dump’s snapshots', checkSnapshot);
        checkChildren(x.connections, id, 'a volume dump’s connections', checkConnection);
      }
      break;
    }
    case 'snapshot':
    case 'connection': {
      const child = x.kind === 'snapshot' ? checkSnapshot(x, 'a snapshot') : checkConnection(x, 'a connection');
      if (checkVolume(x.volume, `a ${x.kind}’s volume`).id !== child.volumeId) {
        throw new InvalidArgumentError(`a ${x.kind}’s volume does not match its volumeId`);
      }
      break;
    }
    default:
      throw new InvalidArgumentError(`unknown kind ${String(x.kind)}; expected volume, snapshot or connection`);
  }
  return x as unknown as Serialized;
}

/** Checks everything before anything is loaded, so bad input changes nothing. `many`: the input was an array. */
export function parseSerialized(input: unknown): { items: Serialized[]; many: boolean } {
  let data = input;
  if (typeof input === 'string') {
    try {
      data = JSON.parse(input);
    } catch (err) {
      throw new InvalidArgumentError(`not JSON: ${messageOf(err)}`);
    }
  }
  const many = Array.isArray(data);
  const list: unknown[] = Array.isArray(data) ? data : [data];
  return { items: list.map(checkItem), many };
}
