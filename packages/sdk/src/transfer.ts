import type { OpArgs, TransferTicket } from '@kindling/protocol';
import type { Registry } from './registry.js';

/** Listen addresses that name every interface of a host, and so none a target agent could dial. */
const WILDCARDS = new Set(['0.0.0.0', '[::]']);

/**
 * A transfer of one volume or snapshot from the agent of `registry`. The ticket's URL is on the source
 * agent's listen address; an agent listening on every interface cannot name one reachable from
 * elsewhere, so the URL this client reached it at is used instead (same host and port, http(s) for ws(s)).
 */
export async function openTransfer(registry: Registry, args: OpArgs<'transfer.open'>): Promise<TransferTicket> {
  const ticket = await registry.call('transfer.open', args);
  const url = new URL(ticket.url);
  if (!WILDCARDS.has(url.hostname)) return ticket;
  const reached = new URL(registry.agent.url);
  url.protocol = reached.protocol === 'wss:' ? 'https:' : 'http:';
  url.host = reached.host;
  return { ...ticket, url: url.toString() };
}
