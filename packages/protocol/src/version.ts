/** Bumped when a frame or op changes shape incompatibly; `hello` refuses a mismatch. */
export const PROTOCOL_VERSION = 1;
