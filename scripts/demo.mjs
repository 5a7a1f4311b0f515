// The quick start's second half: the agent on its embedded default (LevelDB under ./var/kindling, a
// local-folder share ./var/share), then cinderlib's snapshot page over the SDK. The agent keeps running.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { Agent } from '@kindling/sdk';

const root = resolve(import.meta.dirname, '..');
const child = spawn(process.execPath, [resolve(root, 'packages/agent/dist/bin.js'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
});
const stop = () => child.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
child.on('exit', (code) => process.exit(code ?? 0));

const listening = await new Promise((res) => {
  createInterface({ input: child.stdout }).on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.event === 'listening') res(msg);
  });
});
console.log(`kindling-agent listening on ${listening.url} (host ${listening.hostId}), index in ./var/kindling, share ./var/share`);

const step = (text) => console.log(`  ${text}`);
try {
  const agent = await Agent.connect(listening.url);
  const nfs = await agent.backend('nfs');
  console.log(`\nSDK demo, agent ${agent.agentVersion}, backends: ${(await agent.backends()).map((b) => `${b.name} (${b.driver})`).join(', ')}`);
  const vol = await nfs.createVolume({ size: 1, name: 'demo' });
  step(`vol = await nfs.createVolume({ size: 1 })        -> ${vol.id} ${vol.status}, ${vol.size} GiB`);
  const snap = await vol.createSnapshot({ name: 'demo-snap' });
  step(`snap = await vol.createSnapshot()                 -> ${snap.id} ${snap.status}`);
  step(`snap === [...vol.snapshots][0]                    -> ${snap === [...vol.snapshots][0]}`);
  step(`vol === snap.volume                               -> ${vol === snap.volume}`);
  const clone = await snap.createVolume({ name: 'from-snap' });
  step(`await snap.createVolume()                         -> ${clone.id} ${clone.status}`);
  await snap.delete();
  step(`await snap.delete(); vol.snapshots.size           -> ${vol.snapshots.size}`);
  await clone.delete();
  await vol.delete();
  step(`await vol.delete(); vol.status                    -> ${vol.status}`);
  const stats = await nfs.stats({ refresh: true });
  step(`nfs stats: ${stats.freeCapacityGb} GiB free of ${stats.totalCapacityGb} GiB, ${stats.totalVolumes} volumes`);
  await agent.close();
  const base = listening.url.replace(/^ws/, 'http').replace(/\/rpc$/, '');
  console.log(`\nThe agent keeps running: ${base}/readyz, ${base}/metrics, ${base}/v1/backends. Ctrl-C stops it.`);
} catch (err) {
  console.error('demo failed:', err);
  stop();
  process.exitCode = 1;
}
