import * as v from 'valibot';
import type {
  BackendInfo,
  BackendStats,
  Capabilities,
  ConnectionRecord,
  GroupSnapshotRecord,
  SnapshotRecord,
  VolumeRecord,
} from './records.js';

/** Largest volume accepted on the wire (1 PiB in GiB); real limits are the backend's free space. */
export const MAX_SIZE_GB = 1024 * 1024;
export const MAX_TEXT = 255;
/** The most volumes one group snapshot holds (each member's writes are held while all are cut). */
export const MAX_GROUP_MEMBERS = 64;

const id = v.pipe(v.string(), v.uuid('must be a UUID'));
const size = v.pipe(
  v.number('size must be a number of GiB'),
  v.integer('size must be a whole number of GiB'),
  v.minValue(1, 'size must be at least 1 GiB'),
  v.maxValue(MAX_SIZE_GB, `size must be at most ${MAX_SIZE_GB} GiB`),
);
const userText = v.pipe(
  v.string(),
  v.maxLength(MAX_TEXT, `must be at most ${MAX_TEXT} characters`),
  v.regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
);
const backendName = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'is not a backend name'));
/**
 * Keys that would touch an object's prototype. msgpack decoding already renames `__proto__` to
 * `__proto_`, and the record schema drops the others silently: both are refused instead.
 */
const UNSAFE_KEYS = new Set(['__proto__', '__proto_', 'constructor', 'prototype']);
const metadata = v.pipe(
  v.custom<Record<string, unknown>>(
    (m) => typeof m === 'object' && m !== null && Object.keys(m).every((k) => !UNSAFE_KEYS.has(k)),
    'keys __proto__, constructor and prototype are not allowed',
  ),
  v.record(userText, userText),
  v.check((m) => Object.keys(m).length <= 64, 'must have at most 64 entries'),
);
const kvKey = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_TEXT), v.regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'));
const kvValue = v.pipe(v.string(), v.maxLength(65536, 'must be at most 64 KiB'));
const connector = v.looseObject({
  host: v.optional(userText),
  initiator: v.optional(userText),
  ip: v.optional(userText),
  multipath: v.optional(v.boolean()),
  platform: v.optional(userText),
  osType: v.optional(userText),
});
/** The most records one list page holds; a request may ask for fewer with `limit`. */
export const MAX_LIST_LIMIT = 1000;
/** No list reply frame is larger: a page ends early rather than pass it (docs/api.md, "Paging"). */
export const MAX_LIST_REPLY_BYTES = 1024 * 1024;
/** `limit` and `cursor` of every list op: `cursor` is a previous reply's `nextCursor`, opaque to clients. */
const paging = {
  limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_LIST_LIMIT, `must be at most ${MAX_LIST_LIMIT}`))),
  cursor: v.optional(v.pipe(v.string(), v.regex(/^[\x21-\x7e]{1,255}$/, 'is not a cursor'))),
};
const newVolumeFields = {
  size: v.optional(size),
  name: v.optional(userText),
  description: v.optional(userText),
  metadata: v.optional(metadata),
};
/** A transfer credential as `transfer.open` mints it: 32 random bytes, base64url. */
const transferCredential = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'is not a transfer credential'));
const transferUrl = v.pipe(v.string(), v.maxLength(2048), v.regex(/^https?:\/\/[^\s]+\/transfer\/[0-9a-f-]{36}$/, 'is not a transfer URL'));

/** One argument schema per op: the agent validates every request with it, the SDK derives its types from it. */
export const opSchemas = {
  hello: v.strictObject({ protocolVersion: v.pipe(v.number(), v.integer()), client: v.optional(userText) }),

  'backend.list': v.strictObject({ ...paging }),
  'backend.stats': v.strictObject({ backend: backendName, refresh: v.optional(v.boolean()) }),
  'backend.capabilities': v.strictObject({ backend: backendName }),
  'backend.validateConnector': v.strictObject({ backend: backendName, connector }),

  'volume.create': v.strictObject({
    backend: backendName,
    size,
    name: v.optional(userText),
    description: v.optional(userText),
    metadata: v.optional(metadata),
  }),
  'volume.get': v.strictObject({ id }),
  'volume.list': v.strictObject({ backend: v.optional(backendName), id: v.optional(id), name: v.optional(userText), ...paging }),
  'volume.delete': v.strictObject({ id }),
  'volume.extend': v.strictObject({ id, size }),
  'volume.clone': v.strictObject({ id, ...newVolumeFields }),
  'volume.revert': v.strictObject({ id, snapshotId: id }),
  'volume.attach': v.strictObject({ id }),
  'volume.detach': v.strictObject({ id }),
  'volume.connect': v.strictObject({ id, connector }),
  /** An operator's way out of `error`: the agent settles the record against storage (admin only). */
  'volume.resetState': v.strictObject({ id }),

  'connection.get': v.strictObject({ id }),
  'connection.list': v.strictObject({ volumeId: id, ...paging }),
  'connection.delete': v.strictObject({ id }),
  'connection.extend': v.strictObject({ id }),

  'snapshot.create': v.strictObject({ volumeId: id, name: v.optional(userText), description: v.optional(userText) }),
  'snapshot.get': v.strictObject({ id }),
  'snapshot.list': v.strictObject({ volumeId: v.optional(id), backend: v.optional(backendName), name: v.optional(userText), ...paging }),
  'snapshot.delete': v.strictObject({ id }),
  'snapshot.createVolume': v.strictObject({ id, ...newVolumeFields }),

  /** Group snapshots: every member on this agent, cut at one instant (docs/api.md, "Group snapshots"). */
  'group.create': v.strictObject({
    volumeIds: v.pipe(
      v.array(id),
      v.minLength(1, 'must name at least one volume'),
      v.maxLength(MAX_GROUP_MEMBERS, `must be at most ${MAX_GROUP_MEMBERS} volumes`),
      v.check((ids) => new Set(ids).size === ids.length, 'must not name a volume twice'),
    ),
    name: v.optional(userText),
  }),
  'group.get': v.strictObject({ id }),
  'group.list': v.strictObject({ ...paging }),
  'group.delete': v.strictObject({ id }),

  'kv.get': v.strictObject({ key: kvKey }),
  'kv.set': v.strictObject({ key: kvKey, value: kvValue }),
  'kv.delete': v.strictObject({ key: kvKey }),

  /**
   * What changed after `since` in the index incarnation `epoch` (both from hello's `changes` or an
   * earlier reply): the newest state of each volume, snapshot and connection record, or its tombstone.
   */
  'changes.list': v.strictObject({
    epoch: v.pipe(v.string(), v.regex(/^[\x21-\x7e]{1,64}$/, 'is not an epoch')),
    since: v.pipe(v.number(), v.integer(), v.minValue(0)),
    ...paging,
  }),
  /**
   * Narrows this session's pushes to the volumes named, the volumes of the backends named, and (with
   * `replied`) every volume this session has been sent in a reply or is creating. No field: everything again.
   */
  'events.follow': v.strictObject({
    volumeIds: v.optional(v.pipe(v.array(id), v.maxLength(MAX_LIST_LIMIT, `must be at most ${MAX_LIST_LIMIT} ids`))),
    backends: v.optional(v.pipe(v.array(backendName), v.maxLength(64))),
    replied: v.optional(v.boolean()),
  }),

  /**
   * Moving volumes (docs/api.md): the source agent mints a one-time credential to read one volume or
   * snapshot (admin only); the target agent pulls it into a new volume with `volume.copyFrom`.
   */
  'transfer.open': v.pipe(
    v.strictObject({ volumeId: v.optional(id), snapshotId: v.optional(id) }),
    v.check((a) => (a.volumeId === undefined) !== (a.snapshotId === undefined), 'give exactly one of volumeId and snapshotId'),
  ),
  'volume.copyFrom': v.strictObject({
    backend: backendName,
    source: v.strictObject({
      url: transferUrl,
      credential: transferCredential,
      sizeBytes: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_SIZE_GB * 1024 ** 3)),
    }),
    ...newVolumeFields,
  }),

  /** Cancels the caller's request that still waits for its turn (by the requestId it was sent with). */
  'request.cancel': v.strictObject({ requestId: v.pipe(v.string(), v.regex(/^[\x21-\x7e]{1,128}$/, 'is not a request id')) }),
} as const;

export type OpName = keyof typeof opSchemas;

/** Ops that change state: the SDK sends a requestId with each, and the agent answers a retry with the first outcome. */
export const MUTATING_OPS: ReadonlySet<OpName> = new Set<OpName>([
  'volume.create',
  'volume.delete',
  'volume.extend',
  'volume.clone',
  'volume.revert',
  'volume.attach',
  'volume.detach',
  'volume.connect',
  'volume.resetState',
  'connection.delete',
  'connection.extend',
  'snapshot.create',
  'snapshot.delete',
  'snapshot.createVolume',
  'group.create',
  'group.delete',
  'volume.copyFrom',
  'kv.set',
  'kv.delete',
]);

/**
 * The ops a read-only credential may call: they look and change nothing. Anything else (mutating ops,
 * control ops such as `request.cancel`, and any op added later until it is listed here) is admin-only.
 */
export const READ_OPS: ReadonlySet<OpName> = new Set<OpName>([
  'hello',
  'backend.list',
  'backend.stats',
  'backend.capabilities',
  'backend.validateConnector',
  'volume.get',
  'volume.list',
  'connection.get',
  'connection.list',
  'snapshot.get',
  'snapshot.list',
  'group.get',
  'group.list',
  'kv.get',
  'changes.list',
  'events.follow',
]);

/** Ops that make a new resource: a retry of one interrupted by an agent restart hands back that resource. */
export const CREATING_OPS: ReadonlySet<OpName> = new Set<OpName>([
  'volume.create',
  'volume.clone',
  'snapshot.create',
  'snapshot.createVolume',
  'group.create',
  'volume.copyFrom',
]);
export const OP_NAMES = Object.keys(opSchemas) as OpName[];
export type OpArgs<O extends OpName> = v.InferInput<(typeof opSchemas)[O]>;
export type ParsedOpArgs<O extends OpName> = v.InferOutput<(typeof opSchemas)[O]>;

export interface HelloResult {
  protocolVersion: number;
  agentVersion: string;
  hostId: string;
  backends: BackendInfo[];
  /** Where the index's change sequence stood when the session began (agents before `changes.list` send none). */
  changes?: ChangePosition;
}

/**
 * A place in an agent's change sequence: `epoch` names the index incarnation (a wiped data dir gets a
 * new one), `seq` counts its committed changes; every change up to `seq` is reflected in what is read after.
 */
export interface ChangePosition {
  epoch: string;
  seq: number;
}

/** One record's newest state after `since`, or its tombstone (`record: null`): it was deleted. */
export type Change =
  | { kind: 'volume'; id: string; seq: number; record: VolumeRecord | null }
  | { kind: 'snapshot'; id: string; volumeId: string; seq: number; record: SnapshotRecord | null }
  | { kind: 'connection'; id: string; volumeId: string; seq: number; record: ConnectionRecord | null };

/**
 * `changes.list`: a page of changes in sequence order and, once `nextCursor` is null, the position the
 * caller has reached; or `history: 'gone'` when the retained history does not reach back to `since`
 * (older than the oldest retained change, or another epoch): the caller reads everything again.
 */
export type ChangesResult =
  | ({ history: 'complete'; changes: Change[]; nextCursor: string | null } & ChangePosition)
  | ({ history: 'gone'; floor: number } & ChangePosition);

/** A page of volumes, each with its current relations, for listings and reloads. */
export interface VolumeListing {
  volumes: VolumeRecord[];
  snapshots: SnapshotRecord[];
  connections: ConnectionRecord[];
  /** Where the next page starts (send it back as `cursor`); null when this page is the last. */
  nextCursor: string | null;
}

/**
 * The answer of a list op other than `volume.list`: sent with `limit`, a page and where the next starts
 * (null at the end); without `limit` (clients from before paging), the bare array when it is complete.
 */
export type Listing<K extends string, T> = T[] | ({ [key in K]: T[] } & { nextCursor: string | null });

/** What a target agent needs to pull one volume or snapshot: `transfer.open`'s answer (admin sessions only). */
export interface TransferTicket {
  source: { kind: 'volume' | 'snapshot'; id: string };
  /** The source agent's transfer route for this one read, on its own listen address. */
  url: string;
  /** Single use, scoped to this read, valid until `expiresAt`; a secret: never logged. */
  credential: string;
  sizeBytes: number;
  /** Whole GiB, the smallest volume that holds it. */
  size: number;
  expiresAt: string;
}

export interface AttachmentResult {
  volume: VolumeRecord;
  connection: ConnectionRecord;
}

export interface OpResults {
  hello: HelloResult;
  'backend.list': Listing<'backends', BackendInfo>;
  'backend.stats': BackendStats;
  'backend.capabilities': Capabilities;
  'backend.validateConnector': { valid: true };
  'volume.create': VolumeRecord;
  'volume.get': VolumeRecord;
  'volume.list': VolumeListing;
  'volume.delete': VolumeRecord;
  'volume.extend': VolumeRecord;
  'volume.clone': VolumeRecord;
  'volume.revert': VolumeRecord;
  'volume.attach': AttachmentResult;
  'volume.detach': AttachmentResult;
  'volume.connect': AttachmentResult;
  /** The settled record (`deleted` when a delete had got through on storage). */
  'volume.resetState': VolumeRecord;
  'connection.get': ConnectionRecord;
  'connection.list': Listing<'connections', ConnectionRecord>;
  'connection.delete': AttachmentResult;
  'connection.extend': { sizeBytes: number };
  'snapshot.create': SnapshotRecord;
  'snapshot.get': SnapshotRecord;
  'snapshot.list': Listing<'snapshots', SnapshotRecord>;
  'snapshot.delete': SnapshotRecord;
  'snapshot.createVolume': VolumeRecord;
  'group.create': GroupSnapshotRecord;
  'group.get': GroupSnapshotRecord;
  'group.list': Listing<'groups', GroupSnapshotRecord>;
  'group.delete': GroupSnapshotRecord;
  'kv.get': { value: string | null };
  'kv.set': { ok: true };
  'kv.delete': { existed: boolean };
  'changes.list': ChangesResult;
  'events.follow': { following: 'everything' | 'some' };
  'request.cancel': { cancelled: boolean };
  'transfer.open': TransferTicket;
  'volume.copyFrom': VolumeRecord;
}
export type OpResult<O extends OpName> = OpResults[O];

export function isOpName(name: unknown): name is OpName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(opSchemas, name);
}

export type ValidationResult<O extends OpName> =
  | { ok: true; args: ParsedOpArgs<O> }
  | { ok: false; message: string; issues: { path: string; message: string }[] };

/** Checks one op's arguments; the message names each offending field. */
export function validateArgs<O extends OpName>(op: O, args: unknown): ValidationResult<O> {
  const result = v.safeParse(opSchemas[op], args ?? {});
  if (result.success) return { ok: true, args: result.output as ParsedOpArgs<O> };
  const issues = result.issues.map((issue) => ({
    path: (issue.path ?? []).map((p) => String(p.key)).join('.') || '(args)',
    message: issue.message,
  }));
  const message = `invalid arguments for ${op}: ` + issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return { ok: false, message, issues };
}
