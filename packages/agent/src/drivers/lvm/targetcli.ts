import { randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '@kindling/protocol';
import type { RunResult, Runner } from '../../exec/run.js';

/** cinder's target_prefix, so initiators see the names they know. */
export const targetIqn = (lv: string): string => `iqn.2010-10.org.openstack:${lv}`;

// RFC 3720 names: iqn.YYYY-MM.reversed.domain[:anything], eui.<16 hex>, naa.<16 or 32 hex>. The
// character set is kept narrow because the name becomes a targetcli path and argument.
const IQN_RE = /^iqn\.\d{4}-\d{2}\.[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[A-Za-z0-9.:_-]+)?$/;
const EUI_RE = /^eui\.[0-9A-Fa-f]{16}$/;
const NAA_RE = /^naa\.(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$/;

export function checkInitiator(initiator: unknown): string {
  if (typeof initiator !== 'string' || initiator === '') {
    throw new InvalidArgumentError('an iSCSI connector needs an initiator name', { field: 'initiator' });
  }
  if (initiator.length > 223 || !(IQN_RE.test(initiator) || EUI_RE.test(initiator) || NAA_RE.test(initiator))) {
    throw new InvalidArgumentError(`not an iSCSI initiator name: ${JSON.stringify(initiator)}`, { field: 'initiator' });
  }
  return initiator;
}

const ALNUM = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
const randomString = (length: number): string =>
  Array.from({ length }, () => ALNUM[randomInt(ALNUM.length)]).join('');

/** Per-initiator CHAP credentials, the lengths cinder generates (20-char user, 16-char secret). */
export const generateChap = (): { username: string; password: string } => ({
  username: randomString(20),
  password: randomString(16),
});

/** LIO's default portal, added by `targetcli /iscsi create`. */
export const DEFAULT_PORTAL = { ip: '0.0.0.0', port: 3260 };

/** Where the kernel shows LIO's configuration (configfs), as targetcli itself reads and writes it. */
export const LIO_CONFIGFS = '/sys/kernel/config/target';

/** The LIO commands an iSCSI export needs, each one targetcli call (argv, no shell). */
export class TargetCli {
  constructor(
    private readonly run: Runner,
    private readonly configfs = LIO_CONFIGFS,
  ) {}

  private cli(...args: string[]): Promise<RunResult> {
    return this.run(['targetcli', ...args]);
  }

  createBackstore(name: string, device: string): Promise<RunResult> {
    return this.cli('/backstores/block', 'create', `name=${name}`, `dev=${device}`);
  }

  deleteBackstore(name: string): Promise<RunResult> {
    return this.cli('/backstores/block', 'delete', name);
  }

  createTarget(iqn: string): Promise<RunResult> {
    return this.cli('/iscsi', 'create', iqn);
  }

  deleteTarget(iqn: string): Promise<RunResult> {
    return this.cli('/iscsi', 'delete', iqn);
  }

  createLun(iqn: string, backstore: string): Promise<RunResult> {
    return this.cli(`/iscsi/${iqn}/tpg1/luns`, 'create', `/backstores/block/${backstore}`);
  }

  /** CHAP on, and only initiators with an ACL may log in. */
  requireAuth(iqn: string): Promise<RunResult> {
    return this.cli(`/iscsi/${iqn}/tpg1`, 'set', 'attribute', 'authentication=1', 'generate_node_acls=0');
  }

  deletePortal(iqn: string, ip: string, port: number): Promise<RunResult> {
    return this.cli(`/iscsi/${iqn}/tpg1/portals`, 'delete', ip, String(port));
  }

  createPortal(iqn: string, ip: string, port: number): Promise<RunResult> {
    return this.cli(`/iscsi/${iqn}/tpg1/portals`, 'create', ip, String(port));
  }

  createAcl(iqn: string, initiator: string): Promise<RunResult> {
    return this.cli(`/iscsi/${iqn}/tpg1/acls`, 'create', initiator);
  }

  /**
   * The ACL's CHAP credentials, written into configfs as targetcli would: on targetcli's command line
   * the secret would show in every local user's `ps` while it runs. `saveConfig` persists them.
   */
  async setAclAuth(iqn: string, initiator: string, username: string, password: string): Promise<void> {
    const auth = join(this.configfs, 'iscsi', iqn, 'tpgt_1', 'acls', initiator, 'auth');
    await writeFile(join(auth, 'userid'), username);
    await writeFile(join(auth, 'password'), password);
  }

  deleteAcl(iqn: string, initiator: string): Promise<RunResult> {
    return this.cli(`/iscsi/${iqn}/tpg1/acls`, 'delete', initiator);
  }

  /** Persists the running configuration so exports survive a target service restart. */
  saveConfig(): Promise<RunResult> {
    return this.cli('saveconfig');
  }
}
