import { networkInterfaces } from 'node:os';

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/**
 * Where clients can reach an agent that listens on `host`. A wildcard is no address a client can dial:
 * it stands for every address of this machine, so those are named (loopback first, which local scripts use).
 */
export function clientUrls(host: string, port: number, tls: boolean): { url: string; urls: string[]; allInterfaces: boolean } {
  const url = (address: string) => `${tls ? 'wss' : 'ws'}://${address.includes(':') ? `[${address}]` : address}:${port}/rpc`;
  if (!WILDCARDS.has(host)) return { url: url(host), urls: [url(host)], allInterfaces: false };
  const addresses = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    // `0.0.0.0` binds IPv4 only; `::` binds both families.
    .filter((a) => host === '::' || a.family === 'IPv4')
    // Link-local IPv6 needs a zone id no URL carries well.
    .filter((a) => !a.address.startsWith('fe80:'))
    .sort((a, b) => Number(b.internal) - Number(a.internal));
  const urls = addresses.map((a) => url(a.address));
  return { url: urls[0] ?? url(host), urls, allInterfaces: true };
}
