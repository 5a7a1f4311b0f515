/** LevelDB key layout (DESIGN.md): records, then '' -valued secondary index keys, all in one keyspace. */
export const keys = {
  volume: (id: string) => `vol:${id}`,
  snapshot: (id: string) => `snap:${id}`,
  connection: (id: string) => `conn:${id}`,
  byBackend: (backend: string, id: string) => `idx:backend:${backend}:${id}`,
  byName: (backend: string, name: string, id: string) => `idx:vname:${nameKey(backend, name)}:${id}`,
  snapshotOf: (volumeId: string, snapshotId: string) => `idx:snapvol:${volumeId}:${snapshotId}`,
  connectionOf: (volumeId: string, connectionId: string) => `idx:connvol:${volumeId}:${connectionId}`,
  group: (id: string) => `grp:${id}`,
  kv: (key: string) => `kv:${key}`,
  request: (requestId: string) => `req:${requestId}`,
  meta: (name: string) => `meta:${name}`,
};

/** Backend names hold no ':' and user names are percent-encoded, so ':' separates every key part. */
const nameKey = (backend: string, name: string): string => `${backend}:${encodeURIComponent(name)}`;

/** Bounds that select every key starting with `prefix`. */
export const prefixRange = (prefix: string): { gte: string; lt: string } => ({ gte: prefix, lt: `${prefix}\xff` });
