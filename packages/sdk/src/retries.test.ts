import { afterEach, describe, expect, it } from 'vitest';
import { BusyError, MUTATING_OPS, TimeoutError, UnavailableError, type OpName } from '@kindling/protocol';
import { Agent } from './agent.js';
import type { ConnectOptions } from './options.js';
import type { Volume } from './volume.js';
import { StandInAgent } from './testing/stand-in-agent.js';

const open: { close(): Promise<void> }[] = [];
async function standIn(): Promise<StandInAgent> {
  const server = await StandInAgent.start();
  open.push({ close: () => server.stop() });
  return server;
}
/** Quick redials, so a test does not wait on back-off. */
async function connect(server: StandInAgent, options: ConnectOptions = {}): Promise<Agent> {
  const agent = await Agent.connect(server.url, { reconnect: { initialDelayMs: 10, maxDelayMs: 50, waitMs: 5000 }, ...options });
  open.push(agent);
  return agent;
}
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const sent = (server: StandInAgent, op: OpName) => server.requests.filter((r) => r.op === op);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A clone the stand-in holds until `release` opens, as a long copy on real storage. */
function slowClone(server: StandInAgent): { release(): void } {
  const release = gate();
  server.handle('volume.clone', async (a) => {
    await release.promise;
    const source = server.volumes.get(String(a.id))!;
    return server.newVolume({ backend: source.backend, size: source.size, sourceVolId: source.id });
  });
  return { release: release.open };
}

/** A fresh volume and its clone, sent and held at the stand-in until `release()`. */
async function cloneInFlight(server: StandInAgent, agent: Agent): Promise<{ vol: Volume; release(): void; cloning: Promise<Volume> }> {
  const vol = await (await agent.backend('lvm')).createVolume({ size: 1 });
  const { release } = slowClone(server);
  const cloning = vol.clone();
  await expect.poll(() => sent(server, 'volume.clone').length).toBe(1);
  return { vol, release, cloning };
}

describe('request ids', () => {
  it('every mutating call carries a fresh one; reads carry none', async () => {
    const server = await standIn();
    const agent = await connect(server);
    const lvm = await agent.backend('lvm');
    const vol = await lvm.createVolume({ size: 1 });
    await vol.extend(2);
    await vol.resetState();
    const snap = await vol.createSnapshot();
    const fromSnap = await snap.createVolume();
    const copy = await vol.clone();
    const elsewhere = await connect(server);
    const moved = await vol.clone({ backend: await elsewhere.backend('lvm') });
    await vol.revertToSnapshot(snap);
    const local = await vol.attach();
    await local.extend();
    await vol.detach();
    await (await vol.connect({ host: 'compute-1' })).disconnect();
    await agent.kv.set('k', 'v');
    await agent.kv.delete('k');
    await agent.kv.get('k');
    await vol.refresh();
    await snap.delete();
    await (await agent.createGroupSnapshot([vol])).delete();
    await Promise.all([fromSnap.delete(), copy.delete(), moved.delete(), vol.delete()]);
    await elsewhere.close();

    const requests = server.requests.filter((r) => r.op !== 'hello');
    const mutating = requests.filter((r) => MUTATING_OPS.has(r.op as OpName));
    expect(new Set(mutating.map((r) => r.op))).toEqual(MUTATING_OPS);
    for (const r of mutating) expect(r.requestId).toMatch(UUID);
    expect(new Set(mutating.map((r) => r.requestId)).size).toBe(mutating.length);
    expect(requests.filter((r) => !MUTATING_OPS.has(r.op as OpName)).map((r) => r.requestId)).toEqual(
      requests.filter((r) => !MUTATING_OPS.has(r.op as OpName)).map(() => undefined),
    );
  });
});

describe('a link dropped mid-call', () => {
  it('is redialled and the call sent again with the same request id: it resolves once, the work ran once', async () => {
    const server = await standIn();
    const { vol, release, cloning } = await cloneInFlight(server, await connect(server));
    server.cut();
    await expect.poll(() => sent(server, 'volume.clone').length).toBe(2);
    release();
    const copy = await cloning;
    const [first, again] = sent(server, 'volume.clone');
    expect(again!.requestId).toBe(first!.requestId);
    expect(server.executions(first!.requestId!)).toBe(1);
    expect(copy.sourceVolId).toBe(vol.id);
    expect([...server.volumes.keys()].sort()).toEqual([vol.id, copy.id].sort());
  });

  it('a reply lost with the link is answered from the recorded outcome: one volume, a delete that does not turn NOT_FOUND', async () => {
    const server = await standIn();
    const agent = await connect(server);
    const lvm = await agent.backend('lvm');
    // The work is done, then the link goes before the reply is out.
    server.handle('volume.create', (a) => {
      const made = server.newVolume({ backend: String(a.backend), size: Number(a.size) });
      server.cut();
      return made;
    });
    const vol = await lvm.createVolume({ size: 1 });
    expect([...server.volumes.keys()]).toEqual([vol.id]);
    const [created] = sent(server, 'volume.create');
    expect(server.executions(created!.requestId!)).toBe(1);
    expect(sent(server, 'volume.create')).toHaveLength(2);

    server.handle('volume.delete', (a) => {
      const record = server.volumes.get(String(a.id))!;
      server.volumes.delete(record.id);
      server.cut();
      return { ...record, status: 'deleted' };
    });
    await vol.delete();
    expect(vol.status).toBe('deleted');
    expect(sent(server, 'volume.delete')).toHaveLength(2);
  });

  it('survives an agent restart within the wait: the call in flight resolves', async () => {
    const server = await standIn();
    const { vol, release, cloning } = await cloneInFlight(server, await connect(server));
    await server.stop();
    await server.listen();
    await expect.poll(() => sent(server, 'volume.clone').length).toBe(2);
    release();
    const copy = await cloning;
    expect(server.executions(sent(server, 'volume.clone')[0]!.requestId!)).toBe(1);
    expect(copy.sourceVolId).toBe(vol.id);
  });

  it('past the wait, rejects UNAVAILABLE with the request id; asking again with it hands back the volume made meanwhile', async () => {
    const server = await standIn();
    const agent = await connect(server, { reconnect: { initialDelayMs: 10, maxDelayMs: 20, waitMs: 100 } });
    const inFlight = await cloneInFlight(server, agent);
    const { vol, release } = inFlight;
    const cloning = inFlight.cloning.catch((e: unknown) => e);
    await server.stop();
    const err = await cloning;
    expect(err).toBeInstanceOf(UnavailableError);
    const { requestId } = (err as UnavailableError).details;
    expect(requestId).toBe(sent(server, 'volume.clone')[0]!.requestId);

    release(); // the agent finishes while the client is away
    await server.listen();
    const copy = await vol.clone({ requestId: requestId as string });
    expect(server.executions(requestId as string)).toBe(1);
    expect(server.volumes.size).toBe(2);
    expect(copy.id).toBe([...server.volumes.keys()].find((id) => id !== vol.id));
  });

  it('reads in flight are sent again too', async () => {
    const server = await standIn();
    const agent = await connect(server);
    const answer = gate();
    server.handle('kv.get', async () => {
      await answer.promise;
      return { value: 'v' };
    });
    const reading = agent.kv.get('k');
    await expect.poll(() => sent(server, 'kv.get').length).toBe(1);
    server.cut();
    await expect.poll(() => sent(server, 'kv.get').length).toBe(2);
    answer.open();
    expect(await reading).toBe('v');
  });
});

describe('BUSY', () => {
  it('is retried after retryAfterMs with the same request id', async () => {
    const server = await standIn();
    const agent = await connect(server);
    server.refuseBusy(2, 5);
    await agent.kv.set('k', 'v');
    const tries = sent(server, 'kv.set');
    expect(tries).toHaveLength(3);
    expect(new Set(tries.map((r) => r.requestId)).size).toBe(1);
    expect(server.kv.get('k')).toBe('v');
  });

  it('reaches the caller after the bounded retries, with retryAfterMs', async () => {
    const server = await standIn();
    const agent = await connect(server, { busyRetries: 2 });
    server.refuseBusy(10, 1);
    const err = await agent.kv.set('k', 'v').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusyError);
    expect((err as BusyError).details.retryAfterMs).toBe(1);
    expect(sent(server, 'kv.set')).toHaveLength(3);
    expect(server.kv.has('k')).toBe(false);
  });
});

describe('deadlines', () => {
  it('long operations have none by default while keepalive watches the link; short ones keep theirs', async () => {
    const server = await standIn();
    const agent = await connect(server, { timeoutMs: 500 });
    const vol = await (await agent.backend('lvm')).createVolume({ size: 1, timeoutMs: 0 });
    const { release } = slowClone(server);
    const cloning = vol.clone();
    const reading = gate();
    server.handle('kv.get', async () => {
      await reading.promise;
      return { value: null };
    });
    // A short call made after the clone times out; the clone, sent first, is still waited for.
    await expect(agent.kv.get('k')).rejects.toBeInstanceOf(TimeoutError);
    release();
    expect((await cloning).sourceVolId).toBe(vol.id);
    reading.open();
  });

  it('with keepalive off, or longTimeoutMs set, long operations time out too', async () => {
    const server = await standIn();
    slowClone(server);
    for (const options of [{ keepaliveMs: 0, timeoutMs: 500 }, { longTimeoutMs: 50 }]) {
      const agent = await connect(server, options);
      const vol = await (await agent.backend('lvm')).createVolume({ size: 1, timeoutMs: 0 });
      await expect(vol.clone()).rejects.toBeInstanceOf(TimeoutError);
    }
  });

  it('TIMEOUT carries the request id; the late reply is adopted and asking again by the id gives that volume, made once', async () => {
    const server = await standIn();
    const agent = await connect(server);
    const vol = await (await agent.backend('lvm')).createVolume({ size: 1 });
    const { release } = slowClone(server);
    const err = await vol.clone({ timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    const { requestId } = (err as TimeoutError).details as { requestId: string };
    expect(requestId).toBe(sent(server, 'volume.clone')[0]!.requestId);

    release();
    await expect.poll(() => agent.dump().length).toBe(2);
    const adopted = agent.load(agent.dump().find((d) => d.id !== vol.id)!);
    expect(adopted.sourceVolId).toBe(vol.id);
    const copy = await vol.clone({ requestId });
    expect(copy).toBe(adopted);
    expect(server.executions(requestId)).toBe(1);
    expect(server.volumes.size).toBe(2);
  });

  it('refuses a bad per-call deadline or request id before sending', async () => {
    const server = await standIn();
    const agent = await connect(server);
    const vol = await (await agent.backend('lvm')).createVolume({ size: 1 });
    await expect(vol.delete({ timeoutMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(vol.delete({ requestId: 'not one' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(vol.delete({ requestId: 'x'.repeat(129) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(sent(server, 'volume.delete')).toHaveLength(0);
  });
});
