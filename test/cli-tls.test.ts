import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../packages/cli/src/testing/run-cli.js';
import { startAgentProcess, type AgentProcess } from './support/agent-process.js';

// The CLI against an agent that speaks mutual TLS: a self-signed server certificate (the client's CA)
// and a self-signed client certificate (the agent's client CA).
const TOKEN = 'cli-tls-token-0123456789';

let dir: string;
let agent: AgentProcess;
let wss: string;
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
});
afterAll(async () => {
  await agent?.dispose();
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
    expect(r).toEqual({ code: 7, stdout: '', stderr: `error: UNAVAILABLE: the agent at ${ws} speaks TLS: use wss://\n` });
  });
});
