import { SCHEMA_VERSION, withoutSecrets } from '@kindling/sdk';
import type { Column, Fields } from './output.js';
import type { AgentRef, ConnectionRecord, SnapshotRecord, VolumeRecord } from './records.js';

/** A volume as commands print it: its record, its relations, and the agent it is on. */
export interface VolumeView {
  record: VolumeRecord;
  snapshots: SnapshotRecord[];
  connections: ConnectionRecord[];
  agent: AgentRef;
}

export interface SnapshotView {
  record: SnapshotRecord;
  agent: AgentRef;
}

export interface ConnectionView {
  record: ConnectionRecord;
  agent: AgentRef;
}

/**
 * A connection record as printed: its credentials (the protocol's secret fields) left out unless
 * `showSecrets`, so that `--json` output pasted into a ticket or a log leaks nothing.
 */
export function connectionRecord(record: ConnectionRecord, showSecrets: boolean): ConnectionRecord {
  return showSecrets ? record : withoutSecrets(record);
}

/** Lists read oldest first; the id breaks ties so the order is stable across calls. */
export const byCreation = (a: { record: { createdAt: string; id: string } }, b: { record: { createdAt: string; id: string } }): number =>
  a.record.createdAt.localeCompare(b.record.createdAt) || a.record.id.localeCompare(b.record.id);

/** An id, with the name a person knows it by. */
export const named = (r: { id: string; name: string | null }): string => (r.name ? `${r.id} (${r.name})` : r.id);

export const orDash = (s: string | null | undefined): string => (s === null || s === undefined || s === '' ? '-' : s);

/** The AGENT column comes first over a fleet, where the same backend name can be on many hosts. */
export function withAgent<T extends { agent: AgentRef }>(fleet: boolean, columns: Column<T>[]): Column<T>[] {
  return fleet ? [{ header: 'AGENT', value: (r) => r.agent.url }, ...columns] : columns;
}

export const VOLUME_COLUMNS: Column<VolumeView>[] = [
  { header: 'ID', value: (v) => v.record.id },
  { header: 'NAME', value: (v) => orDash(v.record.name) },
  { header: 'SIZE', value: (v) => `${v.record.size}G` },
  { header: 'STATUS', value: (v) => v.record.status },
  { header: 'BACKEND', value: (v) => v.record.backend },
  { header: 'SNAPSHOTS', value: (v) => String(v.snapshots.length) },
  { header: 'ATTACHED', value: (v) => String(v.connections.length) },
  { header: 'CREATED', value: (v) => v.record.createdAt },
];

/** Cinderlib's dump (the volume with its snapshots and connections inlined), plus where it lives. */
export function volumeJson(v: VolumeView): unknown {
  return { schemaVersion: SCHEMA_VERSION, kind: 'volume', ...v.record, snapshots: v.snapshots, connections: v.connections, agent: v.agent };
}

export function volumeFields(v: VolumeView): Fields {
  const r = v.record;
  const metadata = Object.entries(r.metadata).map(([k, val]) => `${k}=${val}`).join(', ');
  return [
    ['ID', r.id],
    ['Name', orDash(r.name)],
    ['Description', orDash(r.description)],
    ['Size', `${r.size} GiB`],
    ['Status', r.status],
    ['Backend', r.backend],
    ['Agent', v.agent.url],
    ['Metadata', orDash(metadata)],
    ['Source volume', orDash(r.sourceVolId)],
    ['Source snapshot', orDash(r.snapshotId)],
    ['Created', r.createdAt],
    ['Updated', r.updatedAt],
    ...(r.error ? ([['Error', `${r.error.code}: ${r.error.message}`]] as Fields) : []),
    ['Snapshots', orDash(v.snapshots.map((s) => `${s.id} (${s.status})`).join(', '))],
    ['Connections', orDash(v.connections.map((c) => c.id).join(', '))],
  ];
}

export const SNAPSHOT_COLUMNS: Column<SnapshotView>[] = [
  { header: 'ID', value: (s) => s.record.id },
  { header: 'NAME', value: (s) => orDash(s.record.name) },
  { header: 'VOLUME', value: (s) => s.record.volumeId },
  { header: 'SIZE', value: (s) => `${s.record.volumeSize}G` },
  { header: 'STATUS', value: (s) => s.record.status },
  { header: 'BACKEND', value: (s) => s.record.backend },
  { header: 'CREATED', value: (s) => s.record.createdAt },
];

export function snapshotJson(s: SnapshotView): unknown {
  return { schemaVersion: SCHEMA_VERSION, kind: 'snapshot', ...s.record, agent: s.agent };
}

export function snapshotFields(s: SnapshotView): Fields {
  const r = s.record;
  return [
    ['ID', r.id],
    ['Name', orDash(r.name)],
    ['Description', orDash(r.description)],
    ['Volume', r.volumeId],
    ['Volume size', `${r.volumeSize} GiB`],
    ['Status', r.status],
    ['Backend', r.backend],
    ['Agent', s.agent.url],
    ['Created', r.createdAt],
    ...(r.error ? ([['Error', `${r.error.code}: ${r.error.message}`]] as Fields) : []),
  ];
}

export function connectionJson(c: ConnectionView): unknown {
  return { schemaVersion: SCHEMA_VERSION, kind: 'connection', ...c.record, agent: c.agent };
}

export function connectionFields(c: ConnectionView): Fields {
  const r = c.record;
  return [
    ['ID', r.id],
    ['Volume', r.volumeId],
    ['Attached', r.attached ? 'yes' : 'no'],
    ['Path', orDash(r.path)],
    ['Connection info', JSON.stringify(r.connectionInfo)],
    ['Created', r.createdAt],
  ];
}
