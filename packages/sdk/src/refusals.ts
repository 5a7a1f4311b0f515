/**
 * Why a dial failed, in words a user can act on. A refusal of the upgrade (a token, an Origin, a Host)
 * is final: UNAUTHORIZED, never UNAVAILABLE, so nothing retries it forever. A wrong scheme (ws:// to an
 * agent that speaks TLS, or wss:// to one that does not) says so instead of "socket hang up".
 */
import { connect as tlsConnect } from 'node:tls';
import { ProtocolError, UnauthorizedError, UnavailableError, type KindlingError } from '@kindling/protocol';

/** A dial failure no redial will cure until someone changes a token or a config. */
export function isFinal(err: KindlingError | null): err is KindlingError {
  return err?.code === 'UNAUTHORIZED' || err?.code === 'PROTOCOL';
}

/** The agent answered the upgrade with HTTP `status` instead of switching protocols. */
export function upgradeRefused(endpoint: string, status: number, tokenGiven: boolean): KindlingError {
  const details = { status };
  switch (status) {
    case 401:
      return tokenGiven
        ? new UnauthorizedError(`the agent at ${endpoint} refused the token`, details)
        : new UnauthorizedError(
            `the agent at ${endpoint} asks for a token and no token was given: pass { token }, or set KINDLING_TOKEN or KINDLING_TOKEN_FILE`,
            details,
          );
    case 403:
      return new UnauthorizedError(`the agent at ${endpoint} refused the connection (HTTP 403: an Origin it does not allow)`, details);
    case 421:
      return new UnauthorizedError(
        `the agent at ${endpoint} does not answer to this host name (HTTP 421): connect by loopback or by a name in its allowed hosts`,
        details,
      );
    default:
      return new UnavailableError(`the agent at ${endpoint} answered the upgrade with HTTP ${status}`, details);
  }
}

/** Whether a TLS handshake completes at `host:port` (the certificate is not checked: only the scheme matters). */
function speaksTls(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) });
    const done = (yes: boolean): void => {
      socket.destroy();
      resolve(yes);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The socket error of a failed dial, explained when the scheme is the wrong one. */
export async function dialFailed(endpoint: string, err: Error & { code?: string }): Promise<KindlingError> {
  const url = new URL(endpoint);
  if (url.protocol === 'wss:' && (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/.test(err.message))) {
    return new ProtocolError(`the agent at ${endpoint} does not speak TLS: connect with ws://`, { code: err.code });
  }
  if (url.protocol === 'ws:' && (err.code === 'ECONNRESET' || /socket hang up/.test(err.message))) {
    const port = Number(url.port || 80);
    if (await speaksTls(url.hostname.replace(/^\[|\]$/g, ''), port)) {
      return new ProtocolError(`the agent at ${endpoint} speaks TLS: connect with wss://${url.host}`, { code: err.code });
    }
  }
  return new UnavailableError(`cannot reach the agent at ${endpoint}: ${err.message}`, err.code ? { code: err.code } : {});
}
