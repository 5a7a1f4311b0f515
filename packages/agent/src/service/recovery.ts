import type { SnapshotRecord, VolumeRecord } from '@kindling/protocol';
import type { ScanResult } from '../drivers/driver.js';
import type { ServiceContext } from './context.js';
import { now } from './lifecycle.js';

const interrupted = (what: string) => ({
  code: 'BACKEND_ERROR' as const,
  message: `the agent stopped while the ${what} was in progress`,
});

export interface RecoveryReport {
  resolved: { id: string; kind: 'volume' | 'snapshot'; from: string; to: string }[];
}

/**
 * Resolves every record left in a transient status by a crash, against what storage holds: present
 * means the operation got there, absent means it did not. Nothing transient survives a restart.
 */
export async function recoverTransient(ctx: ServiceContext): Promise<RecoveryReport> {
  const report: RecoveryReport = { resolved: [] };
  const volumes = [...ctx.index.allVolumes()].filter((v) => ['creating', 'deleting', 'extending'].includes(v.status));
  const snapshots = [...ctx.index.allSnapshots()].filter((s) => ['creating', 'deleting'].includes(s.status));
  if (volumes.length === 0 && snapshots.length === 0) return report;

  const scans = new Map<string, ScanResult | null>();
  for (const backend of new Set([...volumes, ...snapshots].map((r) => r.backend))) {
    const driver = ctx.backends.drivers().find((d) => d.name === backend);
    scans.set(backend, driver ? await driver.scan().catch(() => null) : null);
  }

  for (const volume of volumes) {
    const scan = scans.get(volume.backend);
    const found = scan?.volumes.find((v) => v.id === volume.id);
    const to = await resolveVolume(ctx, volume, found, scan !== null);
    report.resolved.push({ id: volume.id, kind: 'volume', from: volume.status, to });
  }
  for (const snapshot of snapshots) {
    const scan = scans.get(snapshot.backend);
    const found = scan?.snapshots.some((s) => s.id === snapshot.id) ?? false;
    const to = await resolveSnapshot(ctx, snapshot, found, scan !== null);
    report.resolved.push({ id: snapshot.id, kind: 'snapshot', from: snapshot.status, to });
  }
  return report;
}

async function resolveVolume(
  ctx: ServiceContext,
  volume: VolumeRecord,
  found: ScanResult['volumes'][number] | undefined,
  scanned: boolean,
): Promise<string> {
  const save = (changes: Partial<VolumeRecord>) => ctx.index.putVolume({ ...volume, ...changes, updatedAt: now() });
  const connected = ctx.index.connectionsOf(volume.id).length > 0;
  const settled = connected ? 'in-use' : 'available';
  if (!scanned) {
    const to = volume.status === 'deleting' ? 'error_deleting' : 'error';
    await save({ status: to, error: interrupted(volume.status === 'deleting' ? 'delete' : 'operation') });
    return to;
  }
  switch (volume.status) {
    case 'creating':
      if (found) await save({ status: 'available', location: found.location, error: null });
      else await save({ status: 'error', error: interrupted('create') });
      return found ? 'available' : 'error';
    case 'deleting':
      if (found) {
        await save({ status: 'error_deleting', error: interrupted('delete') });
        return 'error_deleting';
      }
      await ctx.index.deleteVolume(volume);
      return 'deleted';
    default:
      // extending: the size storage reports is the truth.
      await save({ status: settled, size: found ? Math.max(volume.size, found.size) : volume.size, error: null });
      return settled;
  }
}

async function resolveSnapshot(ctx: ServiceContext, snapshot: SnapshotRecord, found: boolean, scanned: boolean) {
  const save = (changes: Partial<SnapshotRecord>) => ctx.index.putSnapshot({ ...snapshot, ...changes, updatedAt: now() });
  if (snapshot.status === 'creating') {
    const to = found && scanned ? 'available' : 'error';
    await save(to === 'available' ? { status: to, error: null } : { status: to, error: interrupted('snapshot') });
    return to;
  }
  if (found || !scanned) {
    await save({ status: 'error_deleting', error: interrupted('snapshot delete') });
    return 'error_deleting';
  }
  await ctx.index.deleteSnapshot(snapshot);
  return 'deleted';
}
