import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCli } from './main.js';

describe('kindling-csi flags', () => {
  it('take flags over the environment', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'csi-main-')), 'token');
    await writeFile(file, 'from-a-file-0123456789\n');
    const env = { KINDLING_URL: 'wss://a:8600,wss://b:8600', CSI_ENDPOINT: 'unix:///env.sock' };
    expect(parseCli(['--mode', 'controller'], env)).toMatchObject({ mode: 'controller', endpoint: 'unix:///env.sock', agents: ['wss://a:8600', 'wss://b:8600'], token: undefined });
    expect(parseCli(['--mode', 'node', '--endpoint', 'unix:///csi/csi.sock', '--agents', 'wss://c:8600', '--token-file', file, '--max-volumes-per-node', '50'], env)).toMatchObject({
      mode: 'node',
      endpoint: 'unix:///csi/csi.sock',
      agents: ['wss://c:8600'],
      token: 'from-a-file-0123456789',
      maxVolumesPerNode: 50,
    });
  });

  it('reads the agents\' CA and client certificate from files', async () => {
    const ca = join(await mkdtemp(join(tmpdir(), 'csi-main-')), 'ca.pem');
    await writeFile(ca, '-----BEGIN CERTIFICATE-----\n');
    expect(parseCli(['--mode', 'all', '--endpoint', 'unix:///x', '--tls-ca', ca], {})).toMatchObject({ tls: { ca: '-----BEGIN CERTIFICATE-----\n', cert: undefined, key: undefined } });
    expect(parseCli(['--mode', 'all', '--endpoint', 'unix:///x'], { KINDLING_TLS_CA: ca })).toMatchObject({ tls: { ca: expect.stringMatching(/BEGIN/) } });
    expect(parseCli(['--mode', 'all', '--endpoint', 'unix:///x'], {})).toEqual(expect.objectContaining({ mode: 'all' }));
    expect(parseCli(['--mode', 'all', '--endpoint', 'unix:///x'], {})).not.toHaveProperty('tls');
  });

  it('takes the thin pool fill above which volumes read abnormal (percent, 0-100)', () => {
    expect(parseCli(['--mode', 'controller', '--endpoint', 'unix:///x', '--thin-pool-threshold', '80'], {})).toMatchObject({ thinPoolThresholdPercent: 80 });
    expect(parseCli(['--mode', 'controller', '--endpoint', 'unix:///x'], {})).not.toHaveProperty('thinPoolThresholdPercent');
    expect(() => parseCli(['--mode', 'controller', '--endpoint', 'unix:///x', '--thin-pool-threshold', '120'], {})).toThrow(/--thin-pool-threshold/);
  });

  it('answers --help with the usage (null: nothing to start)', () => {
    expect(parseCli(['--help'], {})).toBeNull();
    expect(parseCli(['-h'], {})).toBeNull();
  });

  it('refuses a missing mode or endpoint and unknown flags', () => {
    expect(() => parseCli(['--endpoint', 'unix:///x'], {})).toThrow(/--mode/);
    expect(() => parseCli(['--mode', 'all'], {})).toThrow(/--endpoint/);
    expect(() => parseCli(['--mode', 'all', '--endpoint', 'unix:///x', '--colour'], {})).toThrow();
  });
});
