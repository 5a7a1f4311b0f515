import { constants } from 'node:fs';
import { access, mkdtemp, rm, stat } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { execa } from 'execa';
import { messageOf } from '@kindling/protocol';
import { checkLocalShares, checkTlsFiles, isLocalShare, type AgentConfig, type LvmBackendConfig } from './config.js';
import { EXIT } from './exit.js';
import { WRAPPER_TOOLS } from './exec/run.js';

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
  const vgs = await execa('vgs', ['--noheadings', '-o', 'vg_name', b.volumeGroup], { env, extendEnv: false, reject: false });
  const findings = [{ ok: vgs.exitCode === 0, what: `backend ${b.name}: volume group ${b.volumeGroup}${vgs.exitCode === 0 ? ' present' : `: ${oneLine(vgs.stderr) || vgs.shortMessage}`}` }];
  if (vgs.exitCode === 0 && b.thinPool) {
    const lvs = await execa('lvs', ['--noheadings', '-o', 'lv_name', `${b.volumeGroup}/${b.thinPool}`], { env, extendEnv: false, reject: false });
    findings.push({ ok: lvs.exitCode === 0, what: `backend ${b.name}: thin pool ${b.thinPool}${lvs.exitCode === 0 ? ' present' : `: ${oneLine(lvs.stderr) || lvs.shortMessage}`}` });
  }
  return findings;
}

/** A local share must be a writable folder; one on the root filesystem is often a mount that did not happen. */
async function checkShare(backend: string, share: string): Promise<Finding[]> {
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
 * `kindling-agent check-config`: validates a parsed config against this host without serving or
 * opening the index (so it runs beside a running agent). One line per check; exit 1 if any failed.
 */
export async function checkConfig(config: AgentConfig, print: (line: string) => void): Promise<number> {
  const findings: Finding[] = [];
  const settled = async (check: () => Promise<void>, what: string) =>
    findings.push(await check().then(() => ({ ok: true, what }), (err: unknown) => ({ ok: false, what: messageOf(err) })));
  await settled(() => checkTlsFiles(config), config.tls ? 'TLS files readable' : 'no TLS (loopback or allowPlaintext)');
  await settled(() => checkLocalShares(config), 'local shares exist or may be created');
  findings.push(await checkDataDir(config.dataDir));
  const lvm = config.backends.filter((b) => b.driver === 'lvm');
  const nfs = config.backends.filter((b) => b.driver === 'nfs');
  const tools = [
    ...WRAPPER_TOOLS,
    ...(lvm.length ? ['lvm', 'vgs', 'lvs'] : []),
    ...(nfs.length ? ['qemu-img'] : []),
    ...(nfs.some((b) => b.shares.some((s) => !isLocalShare(s))) ? ['mount.nfs'] : []),
  ];
  for (const tool of tools) {
    const found = await onPath(tool);
    findings.push({ ok: found, what: `tool ${tool}${found ? ' installed' : ' not found on PATH'}` });
  }
  for (const b of lvm) findings.push(...(await checkLvm(b)));
  for (const b of nfs) {
    for (const share of b.shares.filter(isLocalShare)) findings.push(...(await checkShare(b.name, share)));
  }
  for (const f of findings) print(`${f.ok ? 'ok  ' : 'FAIL'}  ${f.what}`);
  return findings.every((f) => f.ok) ? EXIT.OK : EXIT.FINDINGS;
}
