import { describe, expect, it } from 'vitest';
import { ConfigError, checkLocalShares, parseConfig } from './config.js';
import { readCli } from './cli.js';
import { EXIT } from './exit.js';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const nfs = { name: 'nfs', driver: 'nfs', shares: ['share'] };

describe('config', () => {
  it('fills defaults and resolves paths against the config file folder', () => {
    const config = parseConfig({ backends: [nfs, { name: 'lvm', driver: 'lvm', volumeGroup: 'vg0', lvmConfFile: 'etc/lvm.conf' }] }, '/etc/kindling');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8600 });
    expect(config.dataDir).toBe('/etc/kindling/var/kindling');
    expect(config.backends[0]).toMatchObject({ shares: ['/etc/kindling/share'], format: 'qcow2', sparse: true, snapshotSupport: true });
    expect(config.backends[1]).toMatchObject({ lvmType: 'default', volumeClear: 'zero', lvmConfFile: '/etc/kindling/etc/lvm.conf' });
  });

  it('keeps an NFS export as it is: the agent mounts it', () => {
    const config = parseConfig({ backends: [{ ...nfs, shares: ['server:/export', '/srv/local'] }] }, '/x');
    expect(config.backends[0]).toMatchObject({ shares: ['server:/export', '/srv/local'] });
  });

  it('refuses to listen beyond loopback without a token', () => {
    expect(() => parseConfig({ listen: { host: '0.0.0.0' }, backends: [nfs] }, '/x')).toThrow(ConfigError);
    const tls = { cert: 'c.pem', key: 'k.pem' };
    expect(() => parseConfig({ listen: { host: '0.0.0.0' }, token: 'a-long-enough-token', tls, backends: [nfs] }, '/x')).not.toThrow();
    expect(() => parseConfig({ listen: { host: '127.0.0.2' }, backends: [nfs] }, '/x')).not.toThrow();
  });

  it('waives the token and TLS only for a loopback address, not for a name that starts like one', () => {
    for (const host of ['127.attacker.test', '127.0.0.1.attacker.test', 'localhost.attacker.test']) {
      expect(() => parseConfig({ listen: { host }, backends: [nfs] }, '/x'), host).toThrow(/token is required/);
      expect(() => parseConfig({ listen: { host }, token: 'a-long-enough-token', backends: [nfs] }, '/x'), host).toThrow(/TLS/);
    }
  });

  it('requires TLS beyond loopback unless plaintext is explicitly allowed', () => {
    const beyond = { listen: { host: '0.0.0.0' }, token: 'a-long-enough-token', backends: [nfs] };
    expect(() => parseConfig(beyond, '/x')).toThrow(/TLS .* is required when listening on 0\.0\.0\.0/);
    expect(() => parseConfig({ ...beyond, allowPlaintext: true }, '/x')).not.toThrow();
    const config = parseConfig({ ...beyond, tls: { cert: 'c.pem', key: 'k.pem', clientCa: 'ca.pem' } }, '/etc/kindling');
    expect(config.tls).toEqual({ cert: '/etc/kindling/c.pem', key: '/etc/kindling/k.pem', clientCa: '/etc/kindling/ca.pem' });
  });

  it('names every bad field', () => {
    const bad = { listen: { port: 70000 }, token: 'short', backends: [nfs, { ...nfs, format: 'vmdk' }, { name: 'x', driver: 'zfs' }] };
    let message = '';
    try {
      parseConfig(bad, '/x');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/listen\.port/);
    expect(message).toMatch(/token/);
    expect(message).toMatch(/backends\.1\.format/);
    expect(message).toMatch(/backends\.2/);
  });

  it('takes the annotated example config of deploy/ as the systemd unit runs it', async () => {
    const file = join(import.meta.dirname, '../../../deploy/examples/agent.yaml');
    const dir = await mkdtemp(join(tmpdir(), 'kindling-example-'));
    await writeFile(join(dir, 'token'), 'example-admin-token-0123456789\n');
    const cli = await readCli(['--config', file, '--token-file', join(dir, 'token'), '--log-level', 'info'], '/');
    const config = cli.command === 'serve' ? cli.config : parseConfig({}, '/');
    expect(config.token).toBe('example-admin-token-0123456789');
    expect(config).toMatchObject({ dataDir: '/var/lib/kindling', listen: { host: '0.0.0.0', port: 8600 }, allowPlaintext: false, capacityRefreshSeconds: 60 });
    expect(config.backends.map((b) => [b.name, b.driver])).toEqual([
      ['lvm', 'lvm'],
      ['nfs', 'nfs'],
    ]);
    expect(config.backends[1]).toMatchObject({ createShares: false, shares: ['nfs-server.example.internal:/export/kindling', '/srv/kindling-share'] });
  });

  const messageOf = (raw: unknown): string => {
    try {
      parseConfig(raw, '/x');
    } catch (err) {
      return (err as Error).message;
    }
    return 'accepted';
  };

  it('says a required key is missing, not unknown', () => {
    expect(messageOf({ backends: [{ name: 'lvm', driver: 'lvm' }] })).toBe('invalid config: backends.0.volumeGroup: required');
  });

  it('names an unknown key with the nearest known one, and does not also call the key it meant missing or unknown', () => {
    expect(messageOf({ backends: [{ name: 'nfs', driver: 'nfs', sahres: ['x'] }], dataDri: 'x' })).toBe(
      'invalid config: backends.0.sahres: unknown key, did you mean shares?; dataDri: unknown key, did you mean dataDir?',
    );
    expect(messageOf({ backends: [{ ...nfs, formt: 'raw' }] })).toBe('invalid config: backends.0.formt: unknown key, did you mean format?');
    expect(messageOf({ backends: [nfs], listen: { hots: 'x', port: 1 } })).toBe('invalid config: listen.hots: unknown key, did you mean host?');
    expect(messageOf({ backends: [nfs], zzzzzz: 1 })).toBe('invalid config: zzzzzz: unknown key (not a setting here)');
  });

  it('calls a bad value invalid and says what it must be', () => {
    expect(messageOf({ backends: [{ ...nfs, format: 'vmdk' }], token: 'short' })).toBe(
      'invalid config: token: invalid, must be at least 16 characters; backends.0.format: invalid, expected "raw" | "qcow2", got "vmdk"',
    );
  });

  it('refuses a missing local share unless createShares, and a share that is a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kindling-shares-'));
    const refused = parseConfig({ backends: [{ ...nfs, shares: ['typo'], createShares: false }] }, dir);
    await expect(checkLocalShares(refused)).rejects.toThrow(`backend nfs: share ${join(dir, 'typo')} does not exist (set createShares: true`);
    await mkdir(join(dir, 'typo'));
    await expect(checkLocalShares(refused)).resolves.toBeUndefined();
    await expect(checkLocalShares(parseConfig({ backends: [{ ...nfs, shares: ['new'], createShares: true }] }, dir))).resolves.toBeUndefined();
    await writeFile(join(dir, 'file'), '');
    await expect(checkLocalShares(parseConfig({ backends: [{ ...nfs, shares: ['file'] }] }, dir))).rejects.toThrow(/is not a directory/);
  });

  it('refuses two backends with one name, and an LVM name lvm2 would not take', () => {
    expect(() => parseConfig({ backends: [nfs, nfs] }, '/x')).toThrow(/unique/);
    expect(() => parseConfig({ backends: [{ name: 'l', driver: 'lvm', volumeGroup: 'vg; rm -rf /' }] }, '/x')).toThrow(/VG name/);
  });
});

describe('command line', () => {
  it('flags override the config file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kindling-cli-'));
    const file = join(dir, 'agent.yaml');
    await writeFile(file, 'listen: { host: 127.0.0.1, port: 9000 }\ndataDir: data\nbackends:\n  - { name: nfs, driver: nfs, shares: [share] }\n');
    const cli = await readCli(['--config', file, '--port', '9100', '--token', 'flag-token-0123456789'], '/cwd');
    expect(cli.command).toBe('serve');
    const config = cli.command === 'serve' ? cli.config : parseConfig({}, '/');
    expect(config.listen.port).toBe(9100);
    expect(config.token).toBe('flag-token-0123456789');
    expect(config.dataDir).toBe(join(dir, 'data'));
  });

  it('runs the embedded default without a config file', async () => {
    const cli = await readCli([], '/srv/kindling');
    const config = cli.command === 'serve' ? cli.config : parseConfig({}, '/');
    expect(config.dataDir).toBe('/srv/kindling/var/kindling');
    expect(config.backends).toMatchObject([{ name: 'nfs', driver: 'nfs', shares: ['/srv/kindling/var/share'] }]);
  });

  it('reads the token from --token-file, else KINDLING_TOKEN', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kindling-token-'));
    await writeFile(join(dir, 'token'), 'file-token-0123456789\n');
    const fromFile = await readCli(['--token-file', join(dir, 'token')], dir);
    expect('config' in fromFile && fromFile.config?.token).toBe('file-token-0123456789');
    process.env.KINDLING_TOKEN = 'env-token-0123456789';
    try {
      const fromEnv = await readCli([], dir);
      expect('config' in fromEnv && fromEnv.config?.token).toBe('env-token-0123456789');
    } finally {
      delete process.env.KINDLING_TOKEN;
    }
    await expect(readCli(['--token-file', join(dir, 'none')], dir)).rejects.toThrow(/cannot read token file/);
  });

  it('answers --help and --version, and refuses unknown flags and commands with the usage exit code', async () => {
    expect(await readCli(['--version'], '/x')).toEqual({ command: 'version' });
    expect(await readCli(['-h'], '/x')).toEqual({ command: 'help' });
    await expect(readCli(['--bogus'], '/x')).rejects.toMatchObject({ exitCode: EXIT.USAGE, message: expect.stringMatching(/^Unknown option '--bogus' \(see/) });
    await expect(readCli(['serv'], '/x')).rejects.toMatchObject({ exitCode: EXIT.USAGE, message: expect.stringMatching(/unknown command serv/) });
    await expect(readCli(['--log-level', 'loud'], '/x')).rejects.toMatchObject({ exitCode: EXIT.USAGE });
  });
});
