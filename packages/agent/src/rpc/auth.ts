import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** What a 401 says, as RFC 6750 asks: the scheme the client should use. */
export const CHALLENGE = 'Bearer realm="kindling"';

/** The credentials of `Authorization: Bearer TOKEN`; the scheme is case-insensitive (RFC 7235 2.1). */
export function bearerToken(header: string | undefined): string {
  return /^bearer +(\S+) *$/i.exec(header ?? '')?.[1] ?? '';
}

/** Checks the bearer token in constant time (hashing first makes the lengths equal). */
export function bearerMatches(header: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  return timingSafeEqual(digest(bearerToken(header)), digest(token));
}

/** `admin` may do anything; `read` may look (probes, scrapers, dashboards) but change nothing. */
export type Role = 'admin' | 'read';

export interface Credentials {
  token?: string | undefined;
  /** Read-only tokens, so a metrics scraper does not hold the token that deletes volumes. */
  readTokens: string[];
}

/** The role an Authorization header grants, or null. Every candidate is compared, so timing says nothing. */
export function roleOf(header: string | undefined, credentials: Credentials): Role | null {
  if (credentials.token === undefined) return 'admin';
  const presented = digest(bearerToken(header));
  const admin = timingSafeEqual(presented, digest(credentials.token));
  const read = credentials.readTokens.map((t) => timingSafeEqual(presented, digest(t))).includes(true);
  return admin ? 'admin' : read ? 'read' : null;
}
