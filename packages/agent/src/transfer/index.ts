import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { UnauthorizedError } from '@kindling/protocol';
import type { Services } from '../services.js';
import { log } from '../log.js';
import { TransferSourceService } from './source.js';
import { TransferTargetService, type CopySlot } from './target.js';

export { TransferSourceService, TransferTargetService, type CopySlot };

/** Both sides of copies between agents, wired once by the rpc server (which knows its URL and the copy slots). */
export interface Transfers {
  source: TransferSourceService;
  target: TransferTargetService;
  /** The transfer route: the data for one presented credential, or 401 (the credential is never logged). */
  route(transferId: string, authorization: string | undefined, res: ServerResponse): Response;
}

export function createTransfers(services: Services, baseUrl: () => string, slot: CopySlot): Transfers {
  const source = new TransferSourceService(services, baseUrl);
  const target = new TransferTargetService(services, services.volumes, slot);
  return {
    source,
    target,
    route(transferId, authorization, res) {
      const credential = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(authorization ?? '')?.[1] ?? '';
      try {
        source.serve(transferId, credential, res);
        return RESPONSE_ALREADY_SENT;
      } catch (err) {
        if (!(err instanceof UnauthorizedError)) throw err;
        log.warn({ transferId }, err.message);
        return Response.json({ error: 'unauthorized' }, { status: 401 });
      }
    },
  };
}
