/** Small helpers every package needs the same way; one copy here so they cannot drift. */

/** A plain object (a decoded map), not null nor an array. */
export const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A UUID in its canonical text form, unanchored, to build names that embed one. */
export const UUID_PATTERN = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** The whole string is a UUID (any case). */
export const UUID_RE = new RegExp(`^${UUID_PATTERN}$`, 'i');

/** Bytes in a GiB: sizes on the wire are whole GiB. */
export const GIB = 1024 ** 3;
