import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, InvalidArgumentError, type Backend, type Connection, type Snapshot, type Volume, type VolumeDump, type VolumeStatus } from '@kindling/sdk';
import type { EventFrame, VolumeRecord } from '@kindling/protocol';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';
import { GiB, nextStatus, virtualSize, volumeFilesIn } from './support/cinderlib.js';

// cinderlib's persistence and serialization (tests/unit/persistence, test_serialization.py, the
// "Serialization" and "Resource tracking" docs), plus Kindling's own: records that survive an agent
// restart or crash, and status changes pushed live to every SDK session.

/** Resolves with the first agent push that `match` accepts, after the SDK applied it. */
function nextEvent(agent: Agent, match: (frame: EventFrame) => boolean, ms = 5000): Promise<EventFrame> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.off('event', listener);
      reject(new Error(`no matching push within ${ms} ms`));
    }, ms);
    const listener = (frame: EventFrame): void => {
      if (!match(frame)) return;
      clearTimeout(timer);
      agent.off('event', listener);
      resolve(frame);
    };
    agent.on('event', listener);
  });
}

describe('serialization and loading (cinderlib’s json, jsons, dump, dumps, toDict, load)', () => {
  let proc: AgentProcess;
  let agent: Agent;
  let nfs: Backend;
  let vol: Volume;
  let snap: Snapshot;
  let conn: Connection;
  let remote: Connection;

  beforeAll(async () => {
    proc = await startAgentProcess();
    agent = await Agent.connect(proc.url);
    nfs = await agent.backend('nfs');
    vol = await nfs.createVolume({ size: 1, name: 'ser', description: 'serialized', metadata: { tier: 'gold' } });
    snap = await vol.createSnapshot({ name: 's1' });
    conn = await vol.attach();
    remote = await vol.connect({ host: 'compute-9' });
  });
  afterAll(async () => {
    await agent?.close();
    await proc?.dispose();
  });

  it('toDict is the agent’s record, a copy the caller may change without touching the object', async () => {
    const other = await Agent.connect(proc.url);
    try {
      const [fresh] = await (await other.backend('nfs')).volumesFiltered({ volumeId: vol.id });
      expect(vol.toDict()).toEqual(fresh!.toDict());
      expect(vol.toDict()).toMatchObject({ id: vol.id, backend: 'nfs', status: 'in-use', name: 'ser', metadata: { tier: 'gold' } });
    } finally {
      await other.close();
    }
    const dict = vol.toDict();
    dict.metadata.tier = 'lead';
    dict.size = 99;
    expect(vol.metadata).toEqual({ tier: 'gold' });
    expect(vol.size).toBe(1);
  });

  it('json names relations by id; dump inlines the snapshots and connections; jsons/dumps are their text', () => {
    const json = vol.json;
    expect(json).toMatchObject({ schemaVersion: 1, kind: 'volume', id: vol.id });
    expect(json).not.toHaveProperty('snapshots');
    expect(JSON.parse(vol.jsons)).toEqual(json);
    const dump = vol.dump;
    expect(dump.snapshots).toEqual([snap.toDict()]);
    expect(dump.connections).toEqual(expect.arrayContaining([conn.toDict(), remote.toDict()]));
    expect(dump.connections).toHaveLength(2);
    expect(JSON.parse(vol.dumps)).toEqual(dump);
    expect(snap.json).toMatchObject({ kind: 'snapshot', id: snap.id, volumeId: vol.id, volume: vol.toDict() });
    expect(conn.json).toMatchObject({ kind: 'connection', id: conn.id, volumeId: vol.id, volume: vol.toDict(), path: conn.path });
    expect(JSON.parse(snap.jsons)).toEqual(snap.json);
    expect(JSON.parse(conn.dumps)).toEqual(conn.json);
  });

  it('load in another connection: live objects equal to the originals, identity-mapped', async () => {
    const other = await Agent.connect(proc.url);
    try {
      const copy = other.load(vol.dumps);
      expect(copy).not.toBe(vol);
      expect(copy.toDict()).toEqual(vol.toDict());
      expect([...copy.snapshots].map((s) => s.toDict())).toEqual([snap.toDict()]);
      expect([...copy.snapshots][0]!.volume).toBe(copy);
      expect(copy.connections.map((c) => c.toDict())).toEqual(vol.connections.map((c) => c.toDict()));
      expect(copy.backend).toBe(await other.backend('nfs'));
      // The same ids give back the same objects, whichever serialized form they come in.
      expect(other.load(vol.json)).toBe(copy);
      expect(other.load(snap.jsons)).toBe([...copy.snapshots][0]);
      const loadedConn = other.load(conn.json);
      expect(copy.connections).toContain(loadedConn);
      expect(loadedConn.volume).toBe(copy);
      // They are live: calls on them reach the agent.
      await copy.refresh();
      expect(copy.status).toBe('in-use');
    } finally {
      await other.close();
    }
  });

  it('agent.dump() dumps the session; loading it elsewhere gives back the same dump', async () => {
    const dumped = agent.dump();
    expect(dumped.map((d) => d.id)).toContain(vol.id);
    const other = await Agent.connect(proc.url);
    try {
      const loaded = other.load(JSON.parse(JSON.stringify(dumped)) as typeof dumped);
      expect(loaded.map((r) => r.id)).toEqual(dumped.map((d) => d.id));
      expect(other.dump()).toEqual(dumped);
    } finally {
      await other.close();
    }
  });

  it('load needs no round trip: it works before the connection is even opened', async () => {
    const cold = new Agent(proc.url);
    try {
      expect(cold.connected).toBe(false);
      const copy = cold.load(vol.dumps);
      expect(copy.toDict()).toEqual(vol.toDict());
      expect(copy.backend.configured).toBe(false); // not known to be configured until the agent says hello
      await cold.open();
      expect(copy.backend.configured).toBe(true);
      expect(copy.backend.driver).toBe('nfs');
      await copy.refresh();
      expect(copy.toDict()).toEqual(vol.toDict());
    } finally {
      await cold.close();
    }
  });

  it('load for an attach-only user: a backend this agent lacks becomes a stub, the connection usable', async () => {
    const other = await Agent.connect(proc.url);
    try {
      // JSON a controller sent from a backend configured elsewhere (cinderlib's fail_on_missing_backend=False).
      const json = { ...conn.json, backend: 'controller-nfs', volume: { ...conn.json.volume, backend: 'controller-nfs' } };
      const loaded = other.load(json);
      expect(loaded.path).toBe(conn.path);
      expect(loaded.connectionInfo).toEqual(conn.connectionInfo);
      expect(loaded.volume.backend).toMatchObject({ name: 'controller-nfs', configured: false, driver: null });
      expect((await other.backends()).map((b) => b.name)).toEqual(['nfs']);
    } finally {
      await other.close();
    }
  });

  it('sub-millisecond timestamps survive the round trip verbatim', () => {
    const other = new Agent(proc.url);
    const at = '2024-05-01T12:34:56.123456Z';
    const json = { ...vol.json, id: randomUUID(), createdAt: at, updatedAt: at };
    const loaded = other.load(JSON.stringify(json)) as Volume; // text from elsewhere: any kind, so narrowed here
    expect(loaded.id).toBe(json.id);
    expect(loaded.createdAt).toBe(at);
    expect(loaded.json.createdAt).toBe(at);
    expect(JSON.parse(loaded.jsons).updatedAt).toBe(at);
    expect(other.load(loaded.dumps)).toBe(loaded);
  });

  it('bad input to load is refused and loads nothing', async () => {
    const other = new Agent(proc.url);
    for (const bad of ['not json', '{}', { ...vol.json, schemaVersion: 99 }, { ...vol.json, kind: 'pool' }, [vol.json, { kind: 'volume' }]]) {
      expect(() => other.load(bad as never)).toThrow(InvalidArgumentError);
    }
    expect(other.dump()).toEqual([]);
    // backend.load takes only that backend's resources: a mixed batch is refused whole.
    await other.open();
    try {
      const foreign = { ...vol.json, id: randomUUID(), backend: 'elsewhere' };
      const nfs2 = await other.backend('nfs');
      expect(() => nfs2.load([vol.json, foreign])).toThrow(InvalidArgumentError);
      expect(other.dump()).toEqual([]);
      expect(nfs2.load([vol.json]).map((r) => r.id)).toEqual([vol.id]);
    } finally {
      await other.close();
    }
  });

  it('refresh keeps a local attachment (cinderlib bug #1868153)', async () => {
    await vol.refresh();
    expect(vol.connections).toContain(conn);
    expect(conn.attached).toBe(true);
    expect(existsSync(conn.path!)).toBe(true);
    expect(vol.status).toBe('in-use');
    // Also for a copy that knows the volume only through its connection's JSON (no relations loaded).
    const other = await Agent.connect(proc.url);
    try {
      const attachment = other.load(conn.jsons);
      await attachment.volume.refresh();
      expect(attachment.volume.connections).toContain(attachment);
      expect(attachment.attached).toBe(true);
      expect(attachment.path).toBe(conn.path);
    } finally {
      await other.close();
    }
  });

  it('refresh of a volume whose relations are loaded drops what the agent no longer has', async () => {
    const other = await Agent.connect(proc.url);
    try {
      const copy = other.load(vol.dump);
      const remoteCopy = copy.connections.find((c) => c.id === remote.id)!;
      await remote.disconnect();
      await copy.refresh();
      expect(copy.connections).not.toContain(remoteCopy);
      expect(remoteCopy.attached).toBe(false);
      expect(copy.connections.map((c) => c.id)).toEqual([conn.id]);
    } finally {
      await other.close();
    }
  });
});

describe('persistence across agent restarts', () => {
  let proc: AgentProcess;
  afterAll(async () => {
    await proc?.dispose();
  });

  it('volumes, snapshots, connections and key-values are all there after a restart, unchanged', async () => {
    proc = await startAgentProcess();
    const agent = await Agent.connect(proc.url);
    const nfs = await agent.backend('nfs');
    const vol = await nfs.createVolume({ size: 2, name: 'keep', metadata: { a: 'b' } });
    const snap = await vol.createSnapshot({ name: 'keep-snap' });
    const conn = await vol.attach();
    const remote = await vol.connect({ host: 'compute-1' });
    const plain = await nfs.createVolume({ size: 1 });
    await agent.kv.set('connector/compute-1', JSON.stringify({ host: 'compute-1', initiator: 'iqn.x' }));
    await agent.kv.set('gone', 'soon');
    expect(await agent.kv.delete('gone')).toBe(true);
    await agent.kv.set('overwritten', 'v1');
    await agent.kv.set('overwritten', 'v2');
    const expected = agent.dump();
    await agent.close();

    proc = await proc.restart();
    const after = await Agent.connect(proc.url);
    try {
      const listed = await (await after.backend('nfs')).volumes();
      expect(listed.map((v) => v.id).sort()).toEqual([vol.id, plain.id].sort());
      // The same records, field for field (connections compared by id: the listing orders them by id).
      const normal = (dumps: VolumeDump[]) =>
        dumps
          .map((d) => ({ ...d, connections: [...d.connections].sort((x, y) => x.id.localeCompare(y.id)) }))
          .sort((x, y) => x.id.localeCompare(y.id));
      expect(normal(after.dump())).toEqual(normal(expected));
      const again = listed.find((v) => v.id === vol.id)!;
      expect(again.status).toBe('in-use');
      expect([...again.snapshots].map((s) => s.toDict())).toEqual([snap.toDict()]);
      expect(again.connections.map((c) => c.id).sort()).toEqual([conn.id, remote.id].sort());
      expect(await after.kv.get('connector/compute-1')).toBe(JSON.stringify({ host: 'compute-1', initiator: 'iqn.x' }));
      expect(await after.kv.get('gone')).toBeNull();
      expect(await after.kv.get('overwritten')).toBe('v2');
      expect(await after.kv.delete('overwritten')).toBe(true);
      expect(await after.kv.delete('overwritten')).toBe(false);
      // And the restarted agent carries on with them.
      await again.detach();
      await again.disconnect(again.connections[0]!);
      expect(again.status).toBe('available');
      await [...again.snapshots][0]!.delete();
      await again.delete();
      expect((await (await after.backend('nfs')).stats()).totalVolumes).toBe(1);
    } finally {
      await after.close();
    }
  });
});

describe('crash: kill -9 mid-operation, then restart', () => {
  let proc: AgentProcess;
  afterAll(async () => {
    await proc?.dispose();
  });

  /**
   * Fires `start` without awaiting, kills the agent at the first push of a volume in `status`, and
   * restarts it. Returns a new connection and the id of the volume that was in `status` at the kill.
   */
  async function crashDuring(
    agent: Agent,
    status: VolumeStatus,
    start: () => Promise<unknown>[],
  ): Promise<{ after: Agent; caughtId: string }> {
    const seen = nextEvent(agent, (f) => f.event === 'volume' && f.resource.status === status);
    const calls = start().map((p) => p.catch((e: unknown) => e));
    const frame = await seen;
    await proc.kill();
    const outcomes = await Promise.all(calls);
    // The calls cut off by the crash were rejected (UNAVAILABLE), not left hanging.
    expect(outcomes.some((o) => o instanceof Error && (o as { code?: string }).code === 'UNAVAILABLE')).toBe(true);
    await agent.close();
    // Let a storage command the agent had started finish, as it would on a real host.
    await new Promise((r) => setTimeout(r, 300));
    proc = await proc.restart();
    return { after: await Agent.connect(proc.url), caughtId: (frame.resource as VolumeRecord).id };
  }

  it('creates cut short end available (with their file) or error (the record kept); none left creating', async () => {
    proc = await startAgentProcess();
    const share = join(proc.dir, 'share');
    const agent = await Agent.connect(proc.url);
    const nfs = await agent.backend('nfs');
    const { after, caughtId } = await crashDuring(agent, 'creating', () =>
      Array.from({ length: 4 }, (_, i) => nfs.createVolume({ size: 1, name: `crash-${i}` })),
    );
    try {
      const listed = await (await after.backend('nfs')).volumes();
      // The record caught in 'creating' was written before the driver ran, so it is there, resolved.
      expect(listed.map((v) => v.id)).toContain(caughtId);
      for (const vol of listed) {
        expect(['available', 'error']).toContain(vol.status);
        if (vol.status === 'available') {
          expect(await virtualSize(join(share, `volume-${vol.id}`), 'qcow2')).toBe(GiB);
        } else {
          expect(vol.error?.message).toMatch(/stopped/);
        }
      }
      // No file on the share that the index does not know.
      const known = new Set(listed.map((v) => `volume-${v.id}`));
      expect((await volumeFilesIn(share)).filter((f) => !known.has(f))).toEqual([]);
      // Everything left deletes cleanly, and the share ends empty.
      for (const vol of listed) await vol.delete();
      expect(await volumeFilesIn(share)).toEqual([]);
      expect((await (await after.backend('nfs')).stats({ refresh: true })).provisionedCapacityGb).toBe(0);
    } finally {
      await after.close();
    }
  });

  it('deletes cut short end deleted (gone) or error_deleting (file still there); none left deleting', async () => {
    const share = join(proc.dir, 'share');
    const agent = await Agent.connect(proc.url);
    const nfs = await agent.backend('nfs');
    const vols = await Promise.all(Array.from({ length: 4 }, () => nfs.createVolume({ size: 1 })));
    const { after, caughtId } = await crashDuring(agent, 'deleting', () => vols.map((v) => v.delete()));
    try {
      const listed = await (await after.backend('nfs')).volumes();
      expect(listed.every((v) => vols.some((x) => x.id === v.id))).toBe(true);
      const byId = new Map(listed.map((v) => [v.id, v]));
      for (const vol of vols) {
        const record = byId.get(vol.id);
        const file = existsSync(join(share, `volume-${vol.id}`));
        if (!record) expect(file).toBe(false);
        else {
          // Never started ('available'), or cut short with its file still there ('error_deleting').
          expect(['available', 'error_deleting']).toContain(record.status);
          expect(file).toBe(true);
        }
      }
      // The one caught in 'deleting' is gone for good or kept in error_deleting, never 'available' again.
      expect(byId.get(caughtId)?.status ?? 'deleted').toMatch(/^(deleted|error_deleting)$/);
      for (const vol of listed) await vol.delete();
      expect(await volumeFilesIn(share)).toEqual([]);
    } finally {
      await after.close();
    }
  });
});

describe('live tracking: pushes reach every session', () => {
  let proc: AgentProcess;
  let a: Agent;
  let b: Agent;
  beforeAll(async () => {
    proc = await startAgentProcess();
    a = await Agent.connect(proc.url);
    b = await Agent.connect(proc.url);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await proc?.dispose();
  });

  it('a second connection sees each status change made by the first, with no call of its own', async () => {
    const volA = await (await a.backend('nfs')).createVolume({ size: 1 });
    const [volB] = await (await b.backend('nfs')).volumesFiltered({ volumeId: volA.id });
    const seen: [VolumeStatus, VolumeStatus][] = [];
    volB!.on('status', (status, previous) => seen.push([status, previous]));

    let pushed = nextStatus<VolumeStatus>(volB!, 'in-use');
    const connA = await volA.attach();
    await pushed;
    // The connection came with it.
    expect(volB!.connections.map((c) => c.id)).toEqual([connA.id]);

    pushed = nextStatus<VolumeStatus>(volB!, 'in-use');
    await volA.extend(2);
    await pushed;
    expect(volB!.size).toBe(2);

    pushed = nextStatus<VolumeStatus>(volB!, 'available');
    await volA.detach();
    await pushed;
    expect(volB!.connections).toEqual([]);

    const snapPushed = nextEvent(b, (f) => f.event === 'snapshot' && f.resource.status === 'available');
    const snapA = await volA.createSnapshot();
    await snapPushed;
    expect([...volB!.snapshots].map((s) => [s.id, s.status])).toEqual([[snapA.id, 'available']]);
    const snapB = [...volB!.snapshots][0]!;
    const snapGone = nextStatus(snapB, 'deleted');
    await snapA.delete();
    await snapGone;
    expect(volB!.snapshots.size).toBe(0);

    pushed = nextStatus<VolumeStatus>(volB!, 'deleted');
    await volA.delete();
    await pushed;

    expect(seen).toEqual([
      ['in-use', 'available'],
      ['extending', 'in-use'],
      ['in-use', 'extending'],
      ['available', 'in-use'],
      ['deleting', 'available'],
      ['deleted', 'deleting'],
    ]);
  });

  it('capacity changes are pushed too', async () => {
    const nfsB = await b.backend('nfs');
    const before = await nfsB.stats();
    const capacity = nextEvent(b, (f) => f.event === 'capacity' && f.resource.totalVolumes === before.totalVolumes + 1);
    const vol = await (await a.backend('nfs')).createVolume({ size: 2 });
    const frame = await capacity;
    expect(frame.resource).toMatchObject({ backendName: 'nfs', provisionedCapacityGb: before.provisionedCapacityGb + 2 });
    await vol.delete();
  });
});
