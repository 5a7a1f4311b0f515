import { describe, expect, it } from 'vitest';
import type { EventFrame } from '@kindling/protocol';
import { connectionRecord, snapshotRecord, volumeRecord } from '../testing/records.js';
import { Follow } from './follow.js';

const volumes = { a: volumeRecord('a', { backend: 'nfs' }), b: volumeRecord('b', { backend: 'nfs' }), l: volumeRecord('l', { backend: 'lvm' }) };
const snapshots = { sa: snapshotRecord('sa', 'a'), sb: snapshotRecord('sb', 'b'), sl: snapshotRecord('sl', 'l', { backend: 'lvm' }) };
const follow = () =>
  new Follow(({ kind, id }) => {
    const volume = volumes[(kind === 'volume' ? id : snapshots[id as keyof typeof snapshots]?.volumeId) as keyof typeof volumes];
    return volume && { volumeId: volume.id, backend: volume.backend };
  });
const progress = (kind: 'volume' | 'snapshot', id: string): EventFrame => ({ event: 'progress', resource: { kind, id, op: 'volume.clone', doneBytes: 1, totalBytes: 2 } });
/** Every kind of push about each volume: which volumes' pushes got through. */
function heard(f: Follow): string[] {
  const out = new Set<string>();
  for (const [id, volume] of Object.entries(volumes)) {
    const snapshot = Object.values(snapshots).find((s) => s.volumeId === id)!;
    const frames: EventFrame[] = [
      { event: 'volume', resource: volume },
      { event: 'snapshot', resource: snapshot },
      { event: 'connection', resource: connectionRecord(`c-${id}`, id, { backend: volume.backend }) },
      progress('volume', id),
      progress('snapshot', snapshot.id),
    ];
    const passed = frames.filter((frame) => f.wants(frame)).length;
    if (passed === frames.length) out.add(id);
    else if (passed > 0) out.add(`${id} (only ${passed} of ${frames.length})`);
  }
  return [...out];
}

describe('a session narrowed by events.follow', () => {
  it('hears everything by default, and again after an empty follow', () => {
    const f = follow();
    expect(heard(f)).toEqual(['a', 'b', 'l']);
    expect(f.set({ volumeIds: ['a'] })).toEqual({ following: 'some' });
    expect(heard(f)).toEqual(['a']);
    expect(f.set({})).toEqual({ following: 'everything' });
    expect(heard(f)).toEqual(['a', 'b', 'l']);
  });

  it('hears the volumes named and the volumes of the backends named (each call adds); capacity always', () => {
    const f = follow();
    f.set({ volumeIds: ['b'] });
    f.set({ backends: ['lvm'] });
    expect(heard(f)).toEqual(['b', 'l']);
    expect(f.wants({ event: 'capacity', resource: {} as never })).toBe(true);
  });

  it('with replied, hears the volumes its replies named and those it is creating', () => {
    const f = follow();
    f.set({ replied: true });
    expect(heard(f)).toEqual([]);
    f.sent({ volumes: [volumes.a], snapshots: [], connections: [], nextCursor: null });
    f.sent({ volume: volumes.b, connection: connectionRecord('c', 'b') });
    expect(heard(f)).toEqual(['a', 'b']);
    f.making('l');
    expect(heard(f)).toEqual(['a', 'b', 'l']);
  });
});
