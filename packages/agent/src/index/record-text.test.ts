import { describe, expect, it } from 'vitest';
import { snapshotRecord, volumeRecord } from '../testing/records.js';
import { keysOf, type RecordKind } from './record-text.js';

/** What the lookups would take from the parsed record: the reference keysOf must agree with. */
const parsedKeys = (text: string, kind: RecordKind) => {
  const r = JSON.parse(text) as Record<string, unknown>;
  return { id: r.id, backend: r.backend, name: kind === 'volume' ? r.name : null, status: r.status, volumeId: kind === 'snapshot' ? r.volumeId : null };
};

const awkward = ['plain', 'a "quoted" name', 'back\\slash\\', 'ends with \\', '","status":"error', 'ünïcødé ☃ \u2028', 'tab\tnew\nline', '{"name":"x"}'];

describe('keysOf', () => {
  it('reads the same lookup fields as parsing the record, whatever the names and metadata hold', () => {
    for (const name of [...awkward, null]) {
      // Metadata that looks like the wanted fields, before and after them.
      const metadata = { status: 'deleting', name: 'other', backend: 'x', id: 'y', nested: '{"id":"z"}' };
      const volume = volumeRecord('v-1', { backend: 'nfs', name, metadata });
      // Fields before the wanted ones: nested objects the scan steps over.
      const front: Record<string, unknown> = { metadata, location: { share: '/s', activeFile: 'f"\\' } };
      const reordered = { ...front, ...volume, status: 'creating' };
      const snapshot = { ...snapshotRecord('s-1', 'v-1', { backend: 'lvm', name: name ?? 'n' }), metadata };
      for (const text of [JSON.stringify(volume), JSON.stringify(reordered)]) expect(keysOf(text, 'volume')).toEqual(parsedKeys(text, 'volume'));
      const text = JSON.stringify({ ...front, ...snapshot });
      expect(keysOf(text, 'snapshot')).toEqual(parsedKeys(text, 'snapshot'));
      expect(keysOf(JSON.stringify(snapshot), 'snapshot')).toEqual(parsedKeys(JSON.stringify(snapshot), 'snapshot'));
    }
  });

  it('parses text it does not expect (whitespace, escaped keys) rather than guess', () => {
    const volume = volumeRecord('v-2', { backend: 'nfs', name: 'n' });
    for (const text of [JSON.stringify(volume, null, 2), JSON.stringify(volume).replace('"status"', '"st\\u0061tus"')]) {
      expect(keysOf(text, 'volume')).toEqual({ id: 'v-2', backend: 'nfs', name: 'n', status: volume.status, volumeId: null });
    }
  });
});
