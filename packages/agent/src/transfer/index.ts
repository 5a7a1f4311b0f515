import type { Services } from '../services.js';
import { TransferSourceService } from './source.js';
import { TransferTargetService, type CopySlot } from './target.js';

export { TransferSourceService, TransferTargetService, type CopySlot };

/** Both sides of copies between agents, wired once by the rpc server (which knows its URL and the copy slots). */
export interface Transfers {
  source: TransferSourceService;
  target: TransferTargetService;
}

export function createTransfers(services: Services, baseUrl: () => string, slot: CopySlot): Transfers {
  const source = new TransferSourceService(services, baseUrl);
  const target = new TransferTargetService(services, services.volumes, slot);
  return { source, target };
}
