import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../packages/cli/src/testing/run-cli.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The CLI against agents that speak TLS with a private CA: one that asks for no client certificate, and
// one that speaks mutual TLS. A self-signed server certificate is the client's CA, a self-signed client
// certificate the mutual agent's client CA.
const TOKEN = 'cli-tls-token-0123456789';

let dir: string;
let agent: AgentProcess;
let wss: string;
/** TLS with a private CA only: no client certificate asked for. */
let serverOnly: AgentProcess;
const pem = (name: string) => join(dir, `${name}.pem`);
const key = (name: string) => join(dir, `${name}.key`);
const kindling = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
  runCli(args, { env: { KINDLING_TOKEN: TOKEN, ...env }, killAfterMs: 60_000 });

async function selfSigned(name: string, cn: string, san: string): Promise<void> {
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key(name), '-out', pem(name), '-days', '1', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`,
  ]);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-cli-tls-'));
  await selfSigned('server', 'localhost', 'IP:127.0.0.1,DNS:localhost');
  await selfSigned('client', 'cli', 'DNS:cli');
  agent = await startAgentProcess({ token: TOKEN, config: { tls: { cert: pem('server'), key: key('server'), clientCa: pem('client') } } });
  wss = agent.url;
  serverOnly = await startAgentProcess({ token: TOKEN, config: { tls: { cert: pem('server'), key: key('server') } } });
});
afterAll(async () => {
  await agent?.dispose();
  await serverOnly?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kindling over TLS', { timeout: 120_000 }, () => {
  it('takes the CA and client certificate from flags, the environment or the client config', async () => {
    expect(wss).toMatch(/^wss:\/\//);
    const flags = await kindling(['--url', wss, '--ca', pem('server'), '--cert', pem('client'), '--key', key('client'), 'backend', 'list', '--json']);
    expect({ code: flags.code, stderr: flags.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(flags.stdout)).toEqual([expect.objectContaining({ name: 'nfs' })]);

    const env = await kindling(['backend', 'list'], { KINDLING_URL: wss, KINDLING_CA: pem('server'), KINDLING_CERT: pem('client'), KINDLING_KEY: key('client') });
    expect({ code: env.code, stderr: env.stderr }).toEqual({ code: 0, stderr: '' });

    const config = join(dir, 'client.yaml');
    await writeFile(config, `url: ${wss}\nca: ${pem('server')}\ncert: ${pem('client')}\nkey: ${key('client')}\n`);
    const fromConfig = await kindling(['backend', 'list'], { KINDLING_CONFIG: config });
    expect({ code: fromConfig.code, stderr: fromConfig.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('says the agent speaks TLS when given ws://', async () => {
    const ws = wss.replace(/^wss:/, 'ws:');
    const r = await kindling(['--url', ws, 'backend', 'list']);
    const { host } = new URL(ws);
    expect(r).toEqual({ code: 10, stdout: '', stderr: `error: PROTOCOL: the agent at ${ws} speaks TLS: connect with wss://${host}\n` });
  });

  it('health reads ready given the CA, and the client certificate for the agent that asks for one', async () => {
    const ca = ['--ca', pem('server')];
    const mutual = [...ca, '--cert', pem('client'), '--key', key('client')];
    type Row = { url: string; link: string; ready: boolean; problem: string | null };
    const rows = (r: CliResult) => JSON.parse(r.stdout) as Row[];

    const privateCa = await kindling(['--url', serverOnly.url, ...ca, 'health', '--json']);
    expect({ code: privateCa.code, stderr: privateCa.stderr }).toEqual({ code: 0, stderr: '' });
    expect(rows(privateCa)).toEqual([expect.objectContaining({ link: 'up', ready: true, problem: null })]);

    const mtls = await kindling(['--url', wss, ...mutual, 'health', '--json']);
    expect({ code: mtls.code, stderr: mtls.stderr }).toEqual({ code: 0, stderr: '' });
    expect(rows(mtls)).toEqual([expect.objectContaining({ link: 'up', ready: true, problem: null })]);

    // Both in one fleet: the same files serve each agent's link and probe.
    const fleet = await kindling(['--agents', `${serverOnly.url},${wss}`, ...mutual, 'health', '--json']);
    expect({ code: fleet.code, stderr: fleet.stderr }).toEqual({ code: 0, stderr: '' });
    expect(rows(fleet).map((h) => [h.url, h.link, h.ready])).toEqual([
      [serverOnly.url, 'up', true],
      [wss, 'up', true],
    ]);

    // Without the CA the certificate is not trusted: not ready (exit 7), saying why.
    const untrusted = await kindling(['--url', serverOnly.url, 'health', '--json']);
    expect(untrusted.code).toBe(7);
    expect(rows(untrusted)).toEqual([expect.objectContaining({ link: 'down', ready: false, problem: expect.stringMatching(/self[- ]signed certificate/) })]);
  });
});
