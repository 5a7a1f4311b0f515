import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, decode, encode, type BackendStats, type ReplyFrame } from '@kindling/protocol';
import { startAgent, type RunningAgent } from '../agent.js';
import { parseConfig } from '../config.js';
import { Metrics } from './metrics.js';

// The parser ships no types: its one function, as its README describes it.
const parsePrometheusTextFormat = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => unknown;

const TOKEN = 'metrics-admin-token-0123456789';
const READ_TOKEN = 'metrics-read-token-0123456789';

let dir: string;
let agent: RunningAgent;
let base: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kindling-metrics-'));
  const config = parseConfig(
    { listen: { port: 0 }, dataDir: 'data', token: TOKEN, readTokens: [READ_TOKEN], backends: [{ name: 'nfs', driver: 'nfs', shares: ['share'] }] },
    dir,
  );
  agent = await startAgent(config);
  base = `http://127.0.0.1:${agent.port}`;
});
afterAll(async () => {
  await agent?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Sends requests in order on one connection and returns their replies. */
async function rpc(calls: [op: string, args: unknown][]): Promise<ReplyFrame[]> {
  const ws = new WebSocket(agent.url, { headers: { authorization: `Bearer ${TOKEN}` } });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const replies: ReplyFrame[] = [];
  for (const [i, [op, args]] of [['hello', { protocolVersion: PROTOCOL_VERSION }] as const, ...calls].entries()) {
    const reply = new Promise<ReplyFrame>((resolve) => {
      const listen = (data: Buffer) => {
        const frame = decode(data) as ReplyFrame;
        if ('id' in frame && frame.id === i) {
          ws.off('message', listen);
          resolve(frame);
        }
      };
      ws.on('message', listen);
    });
    ws.send(encode({ id: i, op, args }));
    replies.push(await reply);
  }
  ws.close();
  return replies.slice(1);
}

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string> }[];
}

const scrape = async (token = READ_TOKEN) => (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
const parse = (text: string): Map<string, Family> => new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
const sample = (f: Family | undefined, labels: Record<string, string>) =>
  f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));

/** The promlint rules, as `promtool check metrics` applies them; CI installs promtool (scripts/install-deps.sh). */
function promtool(text: string): string {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool is not installed (scripts/install-deps.sh installs it): ${run.error.message}`);
  return `${run.status} ${run.stdout}${run.stderr}`.trim();
}

describe('/metrics', () => {
  it('is for credentials only, counts refusals, and serves a read-only token', async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const families = parse(await scrape());
    expect(sample(families.get('kindling_auth_refusals_total'), { reason: 'bad_token' })?.value).toBe('2');
  });

  it('passes promtool and the parser, with HELP on every family and base units', async () => {
    const [created, missing] = await rpc([
      ['volume.create', { backend: 'nfs', size: 1, name: 'm' }],
      ['volume.get', { id: '00000000-0000-4000-8000-000000000000' }],
    ]);
    expect([created?.ok, missing?.ok]).toEqual([true, false]);
    const text = await scrape();
    expect(promtool(text)).toBe('0');
    const families = parse(text);
    for (const f of families.values()) {
      expect({ name: f.name, help: f.help.length > 0 }).toEqual({ name: f.name, help: true });
      if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/);
    }
    const kindling = [...families.keys()].filter((n) => n.startsWith('kindling_'));
    // GiB, milliseconds and friends are not base units.
    expect(kindling.filter((n) => /_(gb|gib|ms|minutes|hours)(_|$)/.test(n))).toEqual([]);
    expect(sample(families.get('kindling_build_info'), {})).toMatchObject({ value: '1', labels: { version: expect.stringMatching(/^\d+\.\d+\.\d+/) } });
    expect([...families.keys()].some((n) => n.startsWith('process_'))).toBe(true);
    expect([...families.keys()].some((n) => n.startsWith('nodejs_'))).toBe(true);

    expect(sample(families.get('kindling_ops_total'), { op: 'volume.create', outcome: 'ok' })?.value).toBe('1');
    expect(sample(families.get('kindling_ops_total'), { op: 'volume.get', outcome: 'NOT_FOUND' })?.value).toBe('1');
    // Long copies take hours: the buckets reach past one. (The parser drops a histogram's labels: any series will do.)
    const latency = families.get('kindling_op_duration_seconds');
    expect(latency?.type).toBe('HISTOGRAM');
    expect(Math.max(...Object.keys(latency?.metrics[0]?.buckets ?? {}).map(Number).filter(Number.isFinite))).toBeGreaterThanOrEqual(3600);
    for (const gauge of ['kindling_sessions', 'kindling_requests_in_flight', 'kindling_commands_running', 'kindling_commands_waiting']) {
      expect(families.get(gauge)?.type).toBe('GAUGE');
    }
    const stats = (await (await fetch(`${base}/v1/backends/nfs/stats`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).json()) as BackendStats;
    expect(Number(sample(families.get('kindling_backend_capacity_bytes'), { backend: 'nfs' })?.value)).toBe(Math.round(stats.totalCapacityGb * 2 ** 30));
    expect(sample(families.get('kindling_backend_provisioned_bytes'), { backend: 'nfs' })?.value).toBe(String(2 ** 30));
    expect(sample(families.get('kindling_backend_ready'), { backend: 'nfs' })?.value).toBe('1');
  });

  it('exports an LVM backend thin pool and VG metadata figures under their own names', async () => {
    const lvm: BackendStats = {
      backendName: 'lvm',
      driver: 'lvm',
      vendorName: 'Open Source',
      driverVersion: '1',
      storageProtocol: 'iSCSI',
      totalCapacityGb: 10,
      freeCapacityGb: 2.5,
      provisionedCapacityGb: 40,
      thinProvisioningSupport: true,
      thickProvisioningSupport: false,
      maxOverSubscriptionRatio: 20,
      reservedPercentage: 0,
      totalVolumes: 4,
      totalSnapshots: 1,
      extra: { thinPoolDataPercent: 75.5, thinPoolMetadataPercent: 12, vgMdaFreeBytes: 500_000, vgMdaSizeBytes: 1_044_480, poolName: 'pool' },
    };
    const readiness = [{ name: 'lvm', driver: 'lvm' as const, ready: true, findings: { leftovers: 0, strays: 2 } }];
    const text = await new Metrics().render([lvm], readiness, { sessions: 1, requestsInFlight: 0, commandsRunning: 0, commandsWaiting: 0 });
    expect(promtool(text)).toBe('0');
    const families = parse(text);
    const value = (name: string) => sample(families.get(name), { backend: 'lvm' })?.value;
    expect({
      free: value('kindling_backend_free_bytes'),
      provisioned: value('kindling_backend_provisioned_bytes'),
      data: value('kindling_backend_thin_pool_data_percent'),
      metadata: value('kindling_backend_thin_pool_metadata_percent'),
      mdaFree: value('kindling_backend_vg_mda_free_bytes'),
      strays: value('kindling_storage_strays'),
    }).toEqual({ free: String(2.5 * 2 ** 30), provisioned: String(40 * 2 ** 30), data: '75.5', metadata: '12', mdaFree: '500000', strays: '2' });
  });
});

