import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../config.js';
import { openServices, type Services } from '../services.js';

export interface TempServices {
  dir: string;
  services: Services;
  dispose(): Promise<void>;
}

/** The agent's services below the wire over one NFS backend `nfs` on a share in a temp dir: real LevelDB, real files. */
export async function tempServices(name: string): Promise<TempServices> {
  const dir = await mkdtemp(join(tmpdir(), `kindling-${name}-`));
  const config = parseConfig({ dataDir: join(dir, 'data'), backends: [{ name: 'nfs', driver: 'nfs', shares: [join(dir, 'share')] }] }, dir);
  const services = await openServices(config);
  // What a start runs after ready reads storage too: done before a test looks.
  await services.recoveredAfterReady;
  const temp: TempServices = {
    dir,
    services,
    dispose: async () => {
      // The services in use now: a test may have reopened them over the same folder.
      await temp.services.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return temp;
}
