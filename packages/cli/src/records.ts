import type { AgentEvents, Connection, Snapshot, Volume } from '@kindling/sdk';

/** The SDK's plain records, named once from its public API (the protocol package is not a dependency). */
export type VolumeRecord = ReturnType<Volume['toDict']>;
export type SnapshotRecord = ReturnType<Snapshot['toDict']>;
export type ConnectionRecord = ReturnType<Connection['toDict']>;
export type EventFrame = AgentEvents['event'][0];
export type ProgressFrame = Extract<EventFrame, { event: 'progress' }>['resource'];

/** Which agent a resource lives on, as a script needs it to come back to it. */
export interface AgentRef {
  url: string;
  hostId: string | null;
}
