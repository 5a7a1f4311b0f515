// The messages of proto/csi.proto as the loader hands them over (camelCase, enums by name, int64 as
// numbers, unset fields as defaults). Only the fields kindling-csi reads or writes.

export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export interface MountVolume {
  fsType: string;
  mountFlags: string[];
  volumeMountGroup?: string;
}

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: MountVolume | null;
  /** The oneof's case, set by the loader on requests. */
  accessType?: 'block' | 'mount';
  accessMode?: { mode: AccessModeName } | null;
}

export interface CapacityRange {
  requiredBytes: number;
  limitBytes: number;
}

export interface Topology {
  segments: Record<string, string>;
}

export interface VolumeContentSource {
  snapshot?: { snapshotId: string } | null;
  volume?: { volumeId: string } | null;
  type?: 'snapshot' | 'volume';
}

export interface CsiVolume {
  capacityBytes: number;
  volumeId: string;
  volumeContext: Record<string, string>;
  contentSource: VolumeContentSource | null;
  accessibleTopology: Topology[];
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface CsiSnapshot {
  sizeBytes: number;
  snapshotId: string;
  sourceVolumeId: string;
  creationTime: Timestamp;
  readyToUse: boolean;
}

export interface CreateVolumeRequest {
  name: string;
  capacityRange: CapacityRange | null;
  volumeCapabilities: VolumeCapability[];
  parameters: Record<string, string>;
  volumeContentSource: VolumeContentSource | null;
  accessibilityRequirements: { requisite: Topology[]; preferred: Topology[] } | null;
}

export interface ValidateVolumeCapabilitiesRequest {
  volumeId: string;
  volumeContext: Record<string, string>;
  volumeCapabilities: VolumeCapability[];
  parameters: Record<string, string>;
}

export interface ListRequest {
  maxEntries: number;
  startingToken: string;
}

export interface ListSnapshotsRequest extends ListRequest {
  sourceVolumeId: string;
  snapshotId: string;
}

export interface GetCapacityRequest {
  volumeCapabilities: VolumeCapability[];
  parameters: Record<string, string>;
  accessibleTopology: Topology | null;
}

export interface CreateSnapshotRequest {
  sourceVolumeId: string;
  name: string;
  parameters: Record<string, string>;
}

export interface ControllerExpandVolumeRequest {
  volumeId: string;
  capacityRange: CapacityRange | null;
  volumeCapability: VolumeCapability | null;
}

export interface NodeStageVolumeRequest {
  volumeId: string;
  stagingTargetPath: string;
  volumeCapability: VolumeCapability | null;
  volumeContext: Record<string, string>;
}

export interface NodeUnstageVolumeRequest {
  volumeId: string;
  stagingTargetPath: string;
}

export interface NodePublishVolumeRequest {
  volumeId: string;
  stagingTargetPath: string;
  targetPath: string;
  volumeCapability: VolumeCapability | null;
  readonly: boolean;
}

export interface NodeUnpublishVolumeRequest {
  volumeId: string;
  targetPath: string;
}

export interface NodeGetVolumeStatsRequest {
  volumeId: string;
  volumePath: string;
  stagingTargetPath: string;
}

export interface NodeExpandVolumeRequest {
  volumeId: string;
  volumePath: string;
  stagingTargetPath: string;
  capacityRange: CapacityRange | null;
  volumeCapability: VolumeCapability | null;
}
