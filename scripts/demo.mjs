// The quick start's second half: the agent on its embedded default (LevelDB under ./var/kindling, a
// local-folder share ./var/share), then cinderlib's snapshot page over the SDK. The agent keeps running.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

// The agent made its token on first start in its data dir (mode 0600); local tools read it from there.
const args = process.argv.slice(2);
const dataDir = resolve(root, args[args.indexOf('--data-dir') + 1] && args.includes('--data-dir') ? args[args.indexOf('--data-dir') + 1] : 'var/kindling');
const tokenFile = resolve(dataDir, 'token');
const token = process.env.KINDLING_TOKEN ?? readFileSync(tokenFile, 'utf8').trim();
console.log(`token: ${tokenFile} (give it to clients as KINDLING_TOKEN_FILE=${tokenFile})`);

const step = (text) => console.log(`  ${text}`);
try {
  const agent = await Agent.connect(listening.url, { token });
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

  // The same from a terminal: the CLI finds the local agent and its token by itself.
  const cli = (...argv) =>
    execFileSync(process.execPath, [resolve(root, 'packages/cli/dist/bin.js'), '--url', listening.url, ...argv], {
      cwd: root,
      env: { ...process.env, KINDLING_TOKEN: token },
      encoding: 'utf8',
    });
  console.log('\nCLI demo (node packages/cli/dist/bin.js, or `kindling` once installed):');
  cli('volume', 'create', '--size', '1', '--name', 'cli-demo');
  console.log('$ kindling volume create --size 1 --name cli-demo && kindling volume list');
  process.stdout.write(cli('volume', 'list'));
  cli('volume', 'delete', 'cli-demo', '--yes');
  console.log('$ kindling volume delete cli-demo --yes');
  const base = listening.url.replace(/^ws/, 'http').replace(/\/rpc$/, '');
  console.log(`\nThe agent keeps running: ${base}/readyz, ${base}/metrics, ${base}/v1/backends. Ctrl-C stops it.`);
} catch (err) {
  console.error('demo failed:', err);
  stop();
  process.exitCode = 1;
}
