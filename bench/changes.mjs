// Reconnect resync benchmark (`pnpm bench changes`): figures only, never asserted.
//  An agent with N indexed volumes; an SDK client holding all of them loses its link while K changes are
//  made, then comes back: what its resync costs (time from the new link to 'reconnect', bytes the agent
//  sent, calls), beside the re-read of everything it holds that the SDK did before the change sequence.
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { decode, encode, PROTOCOL_VERSION } from '@kindling/protocol';
import { Agent } from '@kindling/sdk';
import { IndexStore, startAgentProcess, volumeRecord } from '@kindling/agent/testing';
import { fmt, sized } from './stats.mjs';

const HELD = Number(process.env.CHANGES_BENCH_VOLUMES ?? sized({ quick: 500, default: 10_000, full: 100_000 }));
const CHANGED = sized({ quick: 4, default: 20, full: 100 });

/** A TCP relay that counts the agent's bytes, can cut every link and refuse new ones, and notes when one opens. */
async function relay(port) {
  const sockets = new Set();
  const state = { open: true, bytes: 0, linkedAt: 0 };
  const server = createServer((client) => {
    if (!state.open) return client.destroy();
    state.linkedAt = performance.now();
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined).on('close', () => sockets.delete(s));
    }
    upstream.on('data', (chunk) => (state.bytes += chunk.length));
    client.pipe(upstream).pipe(client);
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    state,
    url: `ws://127.0.0.1:${server.address().port}`,
    cut: () => {
      state.open = false;
      for (const s of sockets) s.destroy();
    },
    heal: () => (state.open = true),
    close: () => new Promise((res) => server.close(res)),
  };
}

async function opCount(port, op) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${process.env.KINDLING_TOKEN}` } });
  const re = new RegExp(`^kindling_ops_total\\{op="${op.replace('.', '\\.')}",outcome="ok"\\} (\\d+)$`, 'm');
  return Number(re.exec(await res.text())?.[1] ?? 0);
}

/** What the SDK did before the change sequence for more than 100 held volumes: every page of the agent. */
async function rereadAll(url) {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${process.env.KINDLING_TOKEN}` } });
  await once(ws, 'open');
  let id = 0;
  let bytes = 0;
  const call = (op, args) =>
    new Promise((res) => {
      const mine = ++id;
      const onMessage = (data) => {
        const frame = decode(data);
        if (frame.id !== mine) return;
        bytes += data.length;
        ws.off('message', onMessage);
        res(frame.result);
      };
      ws.on('message', onMessage);
      ws.send(encode({ id: mine, op, args }));
    });
  await call('hello', { protocolVersion: PROTOCOL_VERSION });
  bytes = 0;
  const t0 = performance.now();
  let calls = 0;
  let cursor;
  do {
    const page = await call('volume.list', { limit: 1000, ...(cursor ? { cursor } : {}) });
    calls++;
    cursor = page.nextCursor;
  } while (cursor);
  const ms = performance.now() - t0;
  ws.close();
  return { ms, bytes, calls };
}

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
const line = (label, { ms, bytes, calls }) => `  ${label.padEnd(52)} ${fmt(ms).padStart(10)}   ${kib(bytes).padStart(12)}   ${calls} calls`;

export async function changes(say = console.log) {
  say(`changes: an agent with ${HELD.toLocaleString('en')} volumes, a client holding all of them, ${CHANGED} changes made while its link was down`);
  let proc = await startAgentProcess();
  await proc.stop();
  const index = await IndexStore.open(join(proc.dir, 'data', 'index'));
  for (let i = 0; i < HELD; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, HELD - i) }, () => index.putVolume(volumeRecord(randomUUID()))));
  }
  await index.close();
  proc = await proc.restart();
  const link = await relay(proc.port);
  const direct = await Agent.connect(proc.url);
  const watcher = await Agent.connect(link.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
  try {
    const held = await (await watcher.backend('nfs')).volumes();
    const down = once(watcher, 'disconnect');
    link.cut();
    await down;
    const nfs = await direct.backend('nfs');
    const made = [];
    for (let i = 0; i < CHANGED; i++) made.push(await nfs.createVolume({ size: 1 }));
    const before = { bytes: link.state.bytes, changes: await opCount(proc.port, 'changes.list'), lists: await opCount(proc.port, 'volume.list') };
    const back = once(watcher, 'reconnect');
    link.heal();
    await back;
    const resync = {
      ms: performance.now() - link.state.linkedAt,
      bytes: link.state.bytes - before.bytes,
      calls: (await opCount(proc.port, 'changes.list')) - before.changes + (await opCount(proc.port, 'volume.list')) - before.lists,
    };
    const reread = await rereadAll(proc.url);
    say(line(`SDK reconnect resync, holding ${held.length.toLocaleString('en')} (changes.list)`, resync));
    say(line(`re-read of all it holds (volume.list pages, before)`, reread));
    say(`  reconnect resync bytes, changes vs re-read        ratio ${(resync.bytes / reread.bytes).toFixed(4)}   (${CHANGED} changes of ${HELD.toLocaleString('en')} volumes)`);
    await Promise.all(made.map((v) => v.delete()));
  } finally {
    await watcher.close();
    await direct.close();
    await link.close();
    await proc.dispose();
  }
}
