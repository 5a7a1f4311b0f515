// The published types use Node's (Buffer, EventEmitter): the reference makes a consumer load them without naming them.
/// <reference types="node" preserve="true" />
export { Agent, type AgentEvents } from './agent.js';
export { Backend, type CreateVolumeOptions, type SnapshotRecordPage, type VolumePage, type VolumesFilter } from './backend.js';
export { Volume, type CloneOptions, type CreateSnapshotOptions } from './volume.js';
export { Snapshot, type NewVolumeOptions } from './snapshot.js';
export { Connection } from './connection.js';
export { GroupSnapshot, type CreateGroupSnapshotOptions } from './group-snapshot.js';
export { KeyValueStore } from './kv.js';
export type { Resource } from './registry.js';
export type { ResourceEvents } from './tracked.js';
export type { CallOptions } from './call-options.js';
export type { ConnectOptions, ReconnectOptions, TlsOptions } from './options.js';
export {
  SCHEMA_VERSION,
  type ConnectionJson,
  type Serialized,
  type SerializedText,
  type SnapshotJson,
  type VolumeDump,
  type VolumeJson,
} from './serialization.js';
// The classes every rejection is an instance of, and the record types, so one import suffices.
export {
  BackendError,
  BusyError,
  ConflictError,
  GIB,
  MAX_LIST_LIMIT,
  InternalError,
  InvalidArgumentError,
  KindlingError,
  NotFoundError,
  ProtocolError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  UnsupportedError,
  SECRET_CONNECTION_FIELDS,
  withoutSecrets,
  roomFor,
  roomGbOf,
  type BackendStats,
  type Capabilities,
  type ConnectionInfo,
  type ConnectorInfo,
  type DriverName,
  type ErrorCode,
  type ErrorInfo,
  type Progress,
  type SnapshotRecord,
  type SnapshotStatus,
  type VolumeStatus,
} from '@kindling/protocol';
export {
  Fleet,
  type AgentFailure,
  type AgentHealth,
  type BackendCapacity,
  type BackendReadiness,
  type FleetAgent,
  type FleetAgentSpec,
  type FleetAgentState,
  type FleetCreateVolumeOptions,
  type FleetOptions,
  type FleetResult,
  type FleetVolumesFilter,
  type Placement,
  type PlaceOptions,
  type PlaceWhere,
  type Readyz,
} from './fleet.js';
