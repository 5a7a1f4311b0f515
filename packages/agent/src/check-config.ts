import { constants } from 'node:fs';
import { access, mkdtemp, rm, stat } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { messageOf } from '@kindling/protocol';
import type { CheckInput } from './cli.js';
import { checkTlsFiles, isLocalShare, localShareProblem, type AgentConfig, type LvmBackendConfig, type NfsBackendConfig } from './config.js';
import { deviceMapperMissing } from './device-mapper.js';
import { EXIT } from './exit.js';
import { launch } from './exec/launch.js';
import { REAPER_TOOLS } from './exec/reaper.js';

interface Finding {
  ok: boolean;
  what: string;
}

const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';

/** Whether an executable of that name is on PATH (as the agent's commands will look it up). */
async function onPath(tool: string): Promise<boolean> {
  for (const dir of PATH.split(delimiter)) {
    if (await access(join(dir, tool), constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

/** The volume group (and thin pool) as lvm2 reports them, read with the backend's own lvm.conf. */
/** A command's complaint on one line, so each check stays one line. */
const oneLine = (text: string): string => text.split('\n').map((l) => l.trim()).filter(Boolean).join('; ');

async function checkLvm(b: LvmBackendConfig): Promise<Finding[]> {
  const env = { PATH, LC_ALL: 'C', LVM_SUPPRESS_FD_WARNINGS: '1', ...(b.lvmConfFile ? { LVM_SYSTEM_DIR: dirname(b.lvmConfFile) } : {}) };
  const probe = async (...argv: string[]) => {
    const { exitCode, stderr, startError } = await launch(argv, { env }).exited;
    return { ok: exitCode === 0, said: oneLine(stderr) || startError || `${argv[0]} exit ${exitCode}` };
  };
  const vgs = await probe('vgs', '--noheadings', '-o', 'vg_name', b.volumeGroup);
  const findings = [{ ok: vgs.ok, what: `backend ${b.name}: volume group ${b.volumeGroup}${vgs.ok ? ' present' : `: ${vgs.said}`}` }];
  if (vgs.ok && b.thinPool) {
    const lvs = await probe('lvs', '--noheadings', '-o', 'lv_name', `${b.volumeGroup}/${b.thinPool}`);
    findings.push({ ok: lvs.ok, what: `backend ${b.name}: thin pool ${b.thinPool}${lvs.ok ? ' present' : `: ${lvs.said}`}` });
  }
  return findings;
}

/** A local share must be a writable folder; one on the root filesystem is often a mount that did not happen. */
async function checkShare(b: NfsBackendConfig, share: string): Promise<Finding[]> {
  const backend = b.name;
  const problem = await localShareProblem(b, share);
  if (problem) return [{ ok: false, what: problem }];
  const found = await stat(share).catch(() => null);
  if (!found) return [{ ok: true, what: `backend ${backend}: share ${share} will be created (createShares)` }];
  const probe = await mkdtemp(join(share, '.kindling-check-')).then(
    (dir) => rm(dir, { recursive: true }).then(() => null),
    (err: unknown) => messageOf(err),
  );
  const root = await stat('/');
  return [
    { ok: probe === null, what: `backend ${backend}: share ${share} ${probe === null ? 'is writable' : `is not writable: ${probe}`}` },
    ...(found.dev === root.dev ? [{ ok: true, what: `backend ${backend}: warning: share ${share} is on the root filesystem (is its mount missing?)` }] : []),
  ];
}

async function checkDataDir(dataDir: string): Promise<Finding> {
  let dir = dataDir;
  // The agent creates the data dir: the nearest folder that exists must be writable.
  while (!(await stat(dir).catch(() => null)) && dirname(dir) !== dir) dir = dirname(dir);
  const writable = await access(dir, constants.W_OK).then(() => true, () => false);
  return { ok: writable, what: `dataDir ${dataDir}${writable ? '' : `: ${dir} is not writable`}` };
}

/**
 * `kindling-agent check-config`: validates a config against this host without serving or opening the
 * index (so it runs beside a running agent). Every check runs, config mistakes included, one line each;
 * the exit code is the worst: 78 for a config mistake, 1 for a failed host check.
 */
export async function checkConfig(input: Omit<CheckInput, 'command' | 'logLevel'>, print: (line: string) => void): Promise<number> {
  const { config, problems } = input;
  const findings: Finding[] = problems.map((what) => ({ ok: false, what }));
  const drivers = config ? config.backends.map((b) => b.driver) : input.drivers;
  const tools = [
    ...REAPER_TOOLS,
    ...(drivers.includes('lvm') ? ['lvm', 'vgs', 'lvs'] : []),
    ...(drivers.includes('nfs') ? ['qemu-img'] : []),
    ...(config?.backends.some((b) => b.driver === 'nfs' && b.shares.some((s) => !isLocalShare(s))) ? ['mount.nfs'] : []),
  ];
  if (config) findings.push(...(await checkHost(config)));
  for (const tool of tools) {
    const found = await onPath(tool);
    findings.push({ ok: found, what: `tool ${tool}${found ? ' installed' : ' not found on PATH'}` });
  }
  if (config) findings.push(...(await checkStorage(config)));
  for (const f of findings) print(`${f.ok ? 'ok  ' : 'FAIL'}  ${f.what}`);
  if (problems.length) return EXIT.CONFIG;
  return findings.every((f) => f.ok) ? EXIT.OK : EXIT.FINDINGS;
}

async function checkHost(config: AgentConfig): Promise<Finding[]> {
  const tls = await checkTlsFiles(config).then(
    () => ({ ok: true, what: config.tls ? 'TLS files readable' : 'no TLS (loopback or allowPlaintext)' }),
    (err: unknown) => ({ ok: false, what: messageOf(err) }),
  );
  return [tls, await checkDataDir(config.dataDir)];
}

/** The "host without device-mapper" profile: what it refuses, and the one setting it cannot take. */
async function checkDeviceMapper(lvm: LvmBackendConfig[]): Promise<Finding[]> {
  const missing = lvm.length > 0 ? await deviceMapperMissing() : undefined;
  if (!missing) return [];
  const profile = 'LVM snapshots, clones and attach are refused; see "Hosts without device-mapper" in docs/operations.md';
  return [
    { ok: true, what: `warning: no device-mapper on this host (${missing}): ${profile}` },
    ...lvm
      .filter((b) => b.volumeClear === 'zero')
      .map((b) => ({ ok: false, what: `backend ${b.name}: volumeClear: zero cannot zero a deleted volume without device-mapper; set volumeClear: none` })),
  ];
}

async function checkStorage(config: AgentConfig): Promise<Finding[]> {
  const findings: Finding[] = await checkDeviceMapper(config.backends.filter((b): b is LvmBackendConfig => b.driver === 'lvm'));
  for (const b of config.backends) {
    if (b.driver === 'lvm') findings.push(...(await checkLvm(b)));
    else for (const share of b.shares.filter(isLocalShare)) findings.push(...(await checkShare(b, share)));
  }
  return findings;
}
