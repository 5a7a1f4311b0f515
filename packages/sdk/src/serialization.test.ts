import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@kindling/protocol';
import { Agent } from './agent.js';
import type { Backend } from './backend.js';
import { Connection } from './connection.js';
import { Snapshot } from './snapshot.js';
import { StandInAgent } from './testing/stand-in-agent.js';
import { Volume } from './volume.js';

let server: StandInAgent;
let agent: Agent;
let lvm: Backend;
const extra: { close(): Promise<void> }[] = [];
beforeEach(async () => {
  server = await StandInAgent.start();
  agent = await Agent.connect(server.url);
  lvm = await agent.backend('lvm');
});
afterEach(async () => {
  for (const x of extra.splice(0)) await x.close();
  await agent.close();
  await server.stop();
});

/** Another host's session: an agent whose only backend is not the one the JSON names (attach-only). */
async function elsewhere(): Promise<Agent> {
  const other = await StandInAgent.start({ backends: [{ name: 'nfs', driver: 'nfs' }] });
  const session = await Agent.connect(other.url);
  extra.push(session, { close: () => other.stop() });
  return session;
}

describe('json and dump', () => {
  it('json carries the envelope and relations by id; dump inlines the volume’s snapshots and connections', async () => {
    const vol = await lvm.createVolume({ size: 1, name: 'v', metadata: { k: 'v' } });
    const snap = await vol.createSnapshot({ name: 's' });
    const conn = await vol.attach();
    expect(vol.json).toMatchObject({ schemaVersion: 1, kind: 'volume', id: vol.id, backend: 'lvm', name: 'v', metadata: { k: 'v' } });
    expect(vol.json).not.toHaveProperty('snapshots');
    expect(JSON.parse(vol.jsons)).toEqual(vol.json);
    expect(vol.toDict()).toEqual(server.volumes.get(vol.id));
    expect(snap.json).toMatchObject({ kind: 'snapshot', volumeId: vol.id, volume: { id: vol.id } });
    expect(snap.toDict()).toEqual(server.snapshots.get(snap.id));
    expect(conn.json).toMatchObject({ kind: 'connection', volumeId: vol.id, attached: true, volume: { id: vol.id } });
    expect(vol.dump.snapshots).toEqual([snap.toDict()]);
    expect(vol.dump.connections).toEqual([conn.toDict()]);
    expect(JSON.parse(vol.dumps)).toEqual(vol.dump);
    expect(agent.dump()).toEqual([vol.dump]);
  });
});

describe('load', () => {
  it('gives back the identity-mapped object, updated, without a round trip', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const sent = server.requests.length;
    expect(agent.load(vol.jsons)).toBe(vol);
    expect(agent.load(snap.json)).toBe(snap);
    expect(agent.load({ ...vol.json, size: 5 })).toBe(vol);
    expect(vol.size).toBe(5);
    expect(server.requests.length).toBe(sent);
  });

  it('rebuilds a dump elsewhere as live objects, on a stub backend, with identity and precise times', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const conn = await vol.connect({ host: 'node-a', initiator: 'iqn.a' });
    const micro = '2024-01-02T03:04:05.123456Z';
    const dump = { ...vol.dump, createdAt: micro };

    const other = await elsewhere();
    const [loaded] = other.load(JSON.stringify([dump])) as Volume[];
    expect(loaded).toBeInstanceOf(Volume);
    expect(loaded!.createdAt).toBe(micro);
    expect(loaded!.backend).toMatchObject({ name: 'lvm', driver: null, configured: false });
    const [loadedSnap] = [...loaded!.snapshots];
    expect(loadedSnap).toBeInstanceOf(Snapshot);
    expect(loadedSnap!.volume).toBe(loaded);
    expect(loaded!.connections[0]).toMatchObject({ id: conn.id, connectorInfo: conn.connectorInfo });
    expect(other.dump()).toEqual([dump]);
    expect(other.load(snap.jsons)).toBe(loadedSnap);
    await expect(other.backend('lvm')).rejects.toThrow(/no backend named lvm/);
  });

  it('loads a connection shipped alone (the attach-only flow)', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const conn = await vol.connect({ host: 'node-b' });
    const other = await elsewhere();
    const loaded = other.load(JSON.parse(conn.jsons));
    expect(loaded).toBeInstanceOf(Connection);
    expect((loaded as Connection).volume.id).toBe(vol.id);
    expect((loaded as Connection).volume.connections).toEqual([loaded]);
  });

  it('refuses bad input with InvalidArgumentError and loads nothing of it', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const other = await elsewhere();
    const bad: unknown[] = [
      '{not json',
      { ...vol.json, schemaVersion: 2 },
      { ...vol.json, kind: 'pool' },
      { ...vol.json, id: 7 },
      { ...vol.dump, snapshots: [{ ...vol.json, kind: undefined, volumeId: 'someone-else' }] },
      [vol.json, { schemaVersion: 1 }],
    ];
    for (const input of bad) expect(() => other.load(input)).toThrow(InvalidArgumentError);
    expect(other.dump()).toEqual([]);
  });

  it('backend.load takes only that backend’s resources', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const other = await elsewhere();
    const nfs = await other.backend('nfs');
    expect(() => nfs.load(vol.json)).toThrow(InvalidArgumentError);
    expect(lvm.load(vol.json)).toBe(vol);
  });

  it('keeps the newer of the loaded and the live record: stale JSON never wins (updatedAt)', async () => {
    const vol = await lvm.createVolume({ size: 1, name: 'live' });
    const snap = await vol.createSnapshot({ name: 'live-snap' });
    const old = '2000-01-01T00:00:00.000Z';
    expect(agent.load({ ...vol.json, size: 7, name: 'stale', updatedAt: old })).toBe(vol);
    expect([vol.size, vol.name]).toEqual([1, 'live']);
    expect(agent.load({ ...snap.json, name: 'stale', updatedAt: old })).toBe(snap);
    expect(snap.name).toBe('live-snap');
    expect(agent.load({ ...vol.dump, updatedAt: old, snapshots: [{ ...snap.toDict(), name: 'stale', updatedAt: old }] })).toBe(vol);
    expect([...vol.snapshots].map((s) => s.name)).toEqual(['live-snap']);
  });

  it('never brings back what the session saw deleted, nor makes a second object for one id', async () => {
    const vol = await lvm.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const oldDump = vol.dump;
    const oldSnap = snap.json;
    await snap.delete();
    expect(agent.load(oldSnap)).toBe(snap);
    expect(agent.load(oldDump)).toBe(vol);
    expect(snap.status).toBe('deleted');
    expect(vol.snapshots.size).toBe(0);
    expect(agent.dump()).toEqual([vol.dump]);

    const gone = await lvm.createVolume({ size: 1 });
    const goneJson = gone.json;
    await gone.delete();
    expect(agent.load(goneJson)).toBe(gone);
    expect(gone.status).toBe('deleted');
    expect(agent.dump().map((d) => d.id)).toEqual([vol.id]);
  });

  it('refresh() re-homes an object loaded with the wrong backend to the one the agent reports', async () => {
    const record = server.newVolume({ backend: 'lvm', size: 1 });
    const vol = agent.load({ schemaVersion: 1, kind: 'volume', ...record, backend: 'elsewhere' });
    expect(vol.backend.name).toBe('elsewhere');
    await vol.refresh();
    expect(vol.backend).toBe(lvm);
    expect(vol.json.backend).toBe('lvm');
    expect(agent.load(vol.json)).toBe(vol);
  });
});
