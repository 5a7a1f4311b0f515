/** LevelDB key layout (DESIGN.md): records, then '' -valued secondary index keys, all in one keyspace. */
export const keys = {
  volume: (id: string) => `vol:${id}`,
  snapshot: (id: string) => `snap:${id}`,
  connection: (id: string) => `conn:${id}`,
  byBackend: (backend: string, id: string) => `idx:backend:${backend}:${id}`,
  byName: (backend: string, name: string, id: string) => `idx:vname:${backend}:${encodeURIComponent(name)}:${id}`,
  snapshotOf: (volumeId: string, snapshotId: string) => `idx:snapvol:${volumeId}:${snapshotId}`,
  connectionOf: (volumeId: string, connectionId: string) => `idx:connvol:${volumeId}:${connectionId}`,
  kv: (key: string) => `kv:${key}`,
  meta: (name: string) => `meta:${name}`,
};

/** Bounds that select every key starting with `prefix` (',' sorts after ':' but before any id char). */
export const prefixRange = (prefix: string): { gte: string; lt: string } => ({ gte: prefix, lt: `${prefix}\xff` });

/** The id is the last ':'-separated part of every index key. */
export const idOfIndexKey = (key: string): string => key.slice(key.lastIndexOf(':') + 1);
