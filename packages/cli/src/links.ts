import { UnauthorizedError, type FleetAgentSpec, type FleetOptions, type KindlingError } from '@kindling/sdk';
import type { Settings } from './settings.js';

/** One agent as the fleet dials it: its own token (agents need not share one) and the TLS files. */
export const agentSpec = (settings: Settings, url: string): FleetAgentSpec => ({ url, token: settings.tokens[url], tls: settings.tls });

/**
 * The deadlines and redials of every connection of the CLI, in the SDK's kinds: the short deadline makes
 * the SDK's connect (10 s), read (30 s) and health probe (5 s) deadlines; calls wait for a dropped link as
 * long as the command's deadline, so a copy outlives a blip: it is resent with its request id and the
 * agent answers with the first outcome.
 */
export function fleetOptions(settings: Settings): FleetOptions {
  const { shortMs, longMs, linkWaitMs } = settings.timeouts;
  return { timeoutMs: shortMs, longTimeoutMs: longMs, reconnect: { waitMs: linkWaitMs } };
}

/** The failure to reach an agent, with the CLI's fix when no token was given at all. */
export function explain(url: string, token: string | undefined, err: KindlingError): KindlingError {
  if (err.code === 'UNAUTHORIZED' && token === undefined) {
    return new UnauthorizedError('no token: set KINDLING_TOKEN or --token-file', { ...err.details, url }, { cause: err });
  }
  return err;
}
