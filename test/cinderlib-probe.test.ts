import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'vitest';
import { Agent } from '@kindling/sdk';
import { startAgentProcess } from './support/agent-process.js';
import { readsPattern, writePattern, chattr } from './support/cinderlib.js';

it('probe', async () => {
  const proc = await startAgentProcess();
  const agent = await Agent.connect(proc.url);
  const nfs = await agent.backend('nfs');
  const share = join(proc.dir, 'share');
  try {
    const vol = await nfs.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const conn = await vol.attach();
    console.log('attached to', conn.path);
    await writePattern(conn, 0xab);
    await snap.delete();
    console.log('after snap delete: exists?', existsSync(conn.path!), 'vol.location', vol.location.activeFile);
    await vol.refresh();
    console.log('after refresh conn.path', vol.connections[0]?.path);
    await vol.detach();
    const c2 = await vol.attach();
    console.log('data kept?', await readsPattern(c2, 0xab));
    await vol.detach();
    // clone while attached
    const c3 = await vol.attach();
    const cl = await vol.clone();
    console.log('after clone conn path exists', existsSync(c3.path!), vol.location.activeFile);
    await vol.detach();
  } finally {
    await agent.close();
    await proc.dispose();
  }
});
