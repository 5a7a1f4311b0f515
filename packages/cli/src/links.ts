import { connect as tlsConnect } from 'node:tls';
import { Agent, KindlingError, UnauthorizedError, UnavailableError, type FleetAgent, type FleetOptions, type FleetAgentState } from '@kindling/sdk';
import type { Settings } from './settings.js';

/**
 * One agent the command talks to, over its own SDK Agent: connecting says hello and nothing more (no
 * backend stats), so one hung share cannot hold a command that does not ask about it. Never rejects:
 * an agent that cannot be reached is `down`, with why.
 */
export class Link implements FleetAgent {
  readonly url: string;
  readonly agent: Agent;
  hostId: string | null = null;
  state: FleetAgentState = 'connecting';
  lastError: KindlingError | null = null;
  readonly #token: string | undefined;

  constructor(url: string, settings: Settings) {
    this.url = url;
    this.#token = settings.tokens[url];
    this.agent = new Agent(url, connectOptions(settings, this.#token));
  }

  async open(): Promise<void> {
    try {
      await this.agent.open();
      this.hostId = this.agent.hostId;
      this.state = 'up';
    } catch (err) {
      if (!(err instanceof KindlingError)) throw err;
      this.state = 'down';
      this.lastError = await explain(this.url, this.#token, err);
    }
  }
}

/**
 * What every connection of the CLI is given: its token, TLS, deadlines by kind, and a redial soon after a
 * drop (the SDK's delays) with calls waiting for the link as long as the command's deadline, so a copy
 * outlives a blip: it is resent with its request id and the agent answers with the first outcome.
 */
export function connectOptions(settings: Settings, token: string | undefined): FleetOptions {
  const { shortMs, longMs, linkWaitMs } = settings.timeouts;
  return { token, tls: settings.tls, timeoutMs: shortMs, longTimeoutMs: longMs, reconnect: { waitMs: linkWaitMs } };
}

/** The failure to reach an agent, with the fix when the cause is a common slip (no token, ws:// to a TLS agent). */
export async function explain(url: string, token: string | undefined, err: KindlingError): Promise<KindlingError> {
  if (err.code === 'UNAUTHORIZED' && token === undefined) {
    return new UnauthorizedError('no token: set KINDLING_TOKEN or --token-file', { ...err.details, url }, { cause: err });
  }
  if (err.code === 'UNAVAILABLE' && url.startsWith('ws://') && (await speaksTls(url))) {
    return new UnavailableError(`the agent at ${url} speaks TLS: use wss://`, { ...err.details, url }, { cause: err });
  }
  return err;
}

/** Whether a TLS handshake completes on the URL's port: the certificate is not judged, only the protocol. */
function speaksTls(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 80), rejectUnauthorized: false });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(2000, () => done(false));
  });
}
