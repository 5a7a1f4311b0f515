import type { BackendStats, Volume } from '@kindling/sdk';
import type { VolumeCondition } from './health.js';

/** Thin pool fill (data or metadata, percent) above which its volumes read abnormal: writes soon stall. */
export const DEFAULT_THIN_POOL_THRESHOLD_PERCENT = 90;

/** A ListVolumes entry's or ControllerGetVolume's `status`: where the volume is published, and how it is. */
export interface VolumeStatus {
  publishedNodeIds: string[];
  volumeCondition: VolumeCondition;
}

const WELL: VolumeCondition = { abnormal: false, message: '' };

/** The condition of a volume whose agent cannot be reached: its storage may be fine, but nothing can reach it. */
export const unreachable = (hostId: string, why: string): VolumeCondition => ({ abnormal: true, message: `agent ${hostId} unreachable: ${why}` });

/**
 * Published where the volume is connected: a local attachment (a node stage) is on the volume's own
 * host, whose id is the node id; a connection for another host's connector is on the host it names.
 */
export function publishedNodes(volume: Volume, hostId: string): string[] {
  const nodes = volume.connections.map((c) => (c.attached ? hostId : typeof c.connectorInfo.host === 'string' ? c.connectorInfo.host : null));
  return [...new Set(nodes.filter((n): n is string => n !== null && n !== ''))];
}

/**
 * What the agent's own figures say is wrong with a reachable volume: its record in error (with the
 * failure the agent kept), or its thin pool above `thresholdPercent` (from the capacity last pushed).
 */
export function conditionOf(volume: Volume, stats: BackendStats | undefined, thresholdPercent: number): VolumeCondition {
  if (volume.status === 'error' || volume.status === 'error_deleting') {
    const cause = volume.error ? `: ${volume.error.code}: ${volume.error.message}` : '';
    return { abnormal: true, message: `volume ${volume.id} is in status ${volume.status}${cause}` };
  }
  const pool = ['thinPoolDataPercent', 'thinPoolMetadataPercent'] as const;
  for (const key of pool) {
    const percent = stats?.extra?.[key];
    if (typeof percent === 'number' && percent > thresholdPercent) {
      const what = key === 'thinPoolDataPercent' ? 'data' : 'metadata';
      return { abnormal: true, message: `thin pool of backend ${volume.backend.name} is ${percent}% full (${what}), above the threshold ${thresholdPercent}%` };
    }
  }
  return WELL;
}

export function volumeStatus(volume: Volume, hostId: string, stats: BackendStats | undefined, thresholdPercent: number): VolumeStatus {
  return { publishedNodeIds: publishedNodes(volume, hostId), volumeCondition: conditionOf(volume, stats, thresholdPercent) };
}
