import { isObject } from './util.js';

/**
 * Keys of a connection's `connectionInfo.data` that are credentials (cinder's iSCSI CHAP session and
 * discovery logins): with the target and initiator named in the same record they let a host log in and
 * read or write the volume. Admin sessions get them; read-only sessions, probes and logs never do.
 */
export const SECRET_CONNECTION_FIELDS: readonly string[] = [
  'auth_username',
  'auth_password',
  'discovery_auth_username',
  'discovery_auth_password',
];

/**
 * A copy of any wire value (a reply, an event, a listing, a dump) with the secret fields of every
 * `connectionInfo` in it removed; the value itself is not changed. Walks the whole value, so a reply
 * shape added later that carries connections is covered without naming it here.
 */
export function withoutSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutSecrets) as T;
  // Only plain maps are walked: bytes or class instances pass through as they are.
  if (!isObject(value) || ![Object.prototype, null].includes(Object.getPrototypeOf(value))) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] = key === 'connectionInfo' && isObject(field) && isObject(field.data) ? { ...field, data: dropSecrets(field.data) } : withoutSecrets(field);
  }
  return out as T;
}

const dropSecrets = (data: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(data).filter(([key]) => !SECRET_CONNECTION_FIELDS.includes(key)));
