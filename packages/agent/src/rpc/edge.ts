import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { MiddlewareHandler } from 'hono';
import { isLoopback } from '../config.js';

export interface EdgePolicy {
  /** Names this agent answers to besides loopback, its listen address, its host name and IP literals. */
  allowedHosts: string[];
  /** Origins (`https://console.example`) whose pages may open `/rpc`; none by default. */
  allowedOrigins: string[];
  listenHost: string;
}

/** The host part of a Host header (`[::1]:8600`, `agent.example:8600`), lower-cased. */
export function hostOf(header: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(header);
  if (bracketed?.[1]) return bracketed[1].toLowerCase();
  const colons = header.split(':').length - 1;
  // More than one colon without brackets: a bare IPv6 literal, no port.
  return (colons === 1 ? header.slice(0, header.lastIndexOf(':')) : header).toLowerCase();
}

/**
 * Whether a Host header names this agent. DNS rebinding sends the attacker's own name, so a name is
 * accepted only when configured (or the machine's own); an IP literal cannot be rebound.
 */
export function hostAllowed(header: string | undefined, policy: EdgePolicy): boolean {
  if (!header) return false;
  const host = hostOf(header);
  if (isIP(host) !== 0 || isLoopback(host)) return true;
  const names = [policy.listenHost, hostname(), ...policy.allowedHosts].map((n) => n.toLowerCase());
  return names.includes(host);
}

/**
 * Browsers always send Origin on a WebSocket upgrade and on cross-site fetches; the SDK, the CLI and
 * probes send none. A page on another site must not drive a local agent (cross-site WebSocket hijacking).
 */
export function originAllowed(origin: string | undefined, policy: EdgePolicy): boolean {
  return origin === undefined || policy.allowedOrigins.includes(origin);
}

/** Refuses requests with a foreign Host (421) or a foreign Origin (403) before any route runs; `refused` hears of each. */
export function edgeGuard(policy: EdgePolicy, refused: (reason: 'host' | 'origin', value: string) => void = () => {}): MiddlewareHandler {
  return async (c, next) => {
    if (!hostAllowed(c.req.header('host'), policy)) {
      refused('host', c.req.header('host') ?? '');
      return c.json({ error: 'this agent does not answer to that Host name', code: 'UNAUTHORIZED' }, 421);
    }
    if (!originAllowed(c.req.header('origin'), policy)) {
      refused('origin', c.req.header('origin') ?? '');
      return c.json({ error: 'requests from that Origin are not allowed', code: 'UNAUTHORIZED' }, 403);
    }
    await next();
  };
}
