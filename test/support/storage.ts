import type { VolumeListing } from '@kindling/protocol';
import type { RawClient } from './raw-client.js';

// Crash and concurrency scenarios drive the agent over the bare protocol: an operation is sent and
// never awaited when the agent is killed under it.

/** The op's result; throws the agent's error (code and message) when it refused or failed. */
export async function call<T>(client: RawClient, op: string, args: unknown): Promise<T> {
  const reply = await client.call(op, args);
  if (!reply.ok) throw Object.assign(new Error(`${op}: ${reply.error.code} ${reply.error.message}`), { code: reply.error.code });
  return reply.result as T;
}

export const listAll = (client: RawClient): Promise<VolumeListing> => call<VolumeListing>(client, 'volume.list', {});
