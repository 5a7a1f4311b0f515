// Makes dist/main.cjs.cache, the V8 code cache kindling-agent's bin reads (code-cache.ts; issue 20): this
// process runs the bundle as the bin does, through a restart on a small index to ready, a client's hello
// and reads, and a stop, then writes the cache as it exits, so that the cache holds the code that path
// compiled. Run by bundle-agent.mjs in a process of its own, with no Node flags but the bin's own (heap.ts;
// V8 refuses a cache made under other flags).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const agentDir = resolve(import.meta.dirname, '../packages/agent');
const main = join(agentDir, 'dist/main.cjs');
const { loadBundle, writeCodeCache } = await import(join(agentDir, 'dist/code-cache.js'));
const { capHeapGrowth } = await import(join(agentDir, 'dist/heap.js'));
// The client's packages, as the agent's dependencies (the SDK may not be built yet).
const agentRequire = createRequire(join(agentDir, 'package.json'));
const { WebSocket } = agentRequire('ws');
const { decode, encode, PROTOCOL_VERSION } = await import(agentRequire.resolve('@kindling/protocol'));

// A client's token in the environment would override the agent's (cli.ts): the build may run under one.
delete process.env.KINDLING_TOKEN;
const dir = mkdtempSync(join(tmpdir(), 'kindling-code-cache-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const token = 'code-cache-training-token-0123456789';
// A free port: this process cannot read the listening line its own agent prints.
const probe = createServer().listen(0, '127.0.0.1');
await once(probe, 'listening');
const { port } = probe.address();
await new Promise((done) => probe.close(done));
mkdirSync(join(dir, 'share'));
const config = join(dir, 'agent.json');
const backends = [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')], format: 'qcow2' }];
writeFileSync(config, JSON.stringify({ listen: { host: '127.0.0.1', port }, dataDir: join(dir, 'data'), token, backends }));

// The first start makes the data dir; the one trained on is a restart, the start a host sees most.
const first = spawn(process.execPath, [join(agentDir, 'dist/bin.js'), '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
await once(createInterface({ input: first.stdout }), 'line');
first.kill('SIGTERM');
const [code] = await once(first, 'exit');
if (code !== 0) throw new Error(`the first start exited with ${code}`);

// As the bin does before it loads the bundle: the cache is made under the flags it will be read under.
capHeapGrowth();
const bundle = loadBundle(main);
process.once('exit', (status) => {
  if (status === 0) writeCodeCache(main, bundle);
});
bundle.exports.run(['--config', config]);
const base = `http://127.0.0.1:${port}`;
while ((await fetch(`${base}/healthz`).catch(() => null))?.status !== 200) await new Promise((r) => setTimeout(r, 5));
const ws = new WebSocket(`ws://127.0.0.1:${port}/rpc`, { headers: { authorization: `Bearer ${token}` } });
await once(ws, 'open');
let id = 0;
const call = async (op, args) => {
  const frame = { id: ++id, op, args };
  ws.send(encode(frame));
  for (;;) {
    const [data] = await once(ws, 'message');
    const reply = decode(data);
    if (reply.id === frame.id) return reply;
  }
};
await call('hello', { protocolVersion: PROTOCOL_VERSION });
await call('backend.list', {});
await call('volume.list', {});
ws.close();
await once(ws, 'close');
// The agent's stop ends this process (exit 0), which writes the cache.
process.kill(process.pid, 'SIGTERM');
