import { networkInterfaces } from 'node:os';
import { InvalidArgumentError, KindlingError, type ConnectionInfo, type ConnectionRecord } from '@kindling/protocol';
import { DEFAULT_PORTAL, type TargetCli, generateChap, targetIqn } from './targetcli.js';

export interface Portal {
  ip: string;
  port: number;
}

/** The first external IPv4 address: where other hosts reach this one when `targetIp` is not set. */
export function defaultTargetIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    const found = addrs?.find((a) => a.family === 'IPv4' && !a.internal);
    if (found) return found.address;
  }
  throw new InvalidArgumentError('no external IPv4 address for iSCSI; set targetIp on the backend');
}

const iscsiOnly = (connections: ConnectionRecord[]): ConnectionRecord[] =>
  connections.filter((c) => c.connectionInfo.driverVolumeType === 'iscsi');

/** A step that may find its object already gone (a retried or partial unexport). */
async function tolerateMissing(step: Promise<unknown>): Promise<void> {
  await step.catch((err: unknown) => {
    const stderr = err instanceof KindlingError && typeof err.details.stderrTail === 'string' ? err.details.stderrTail : '';
    if (!/No such path|does not exist|not found/i.test(`${stderr} ${err instanceof Error ? err.message : ''}`)) throw err;
  });
}

/**
 * An LV exported over iSCSI with LIO, as cinder's lioadm: one block backstore, one target with one LUN
 * and CHAP, and one ACL per connected initiator. The export goes with the volume's last connection.
 */
export class IscsiExport {
  constructor(
    private readonly targets: TargetCli,
    private readonly portal: () => Portal,
  ) {}

  /**
   * `initiator` is already checked; `activate` brings the LV's device up (inside the VG queue) and
   * returns its path; `others` are the volume's existing connections.
   */
  async connect(
    volumeId: string,
    lv: string,
    initiator: string,
    others: ConnectionRecord[],
    activate: () => Promise<string>,
  ): Promise<ConnectionInfo> {
    const existing = iscsiOnly(others);
    // The same initiator already has its ACL: hand back the credentials it was given.
    const same = existing.find((c) => c.connectorInfo.initiator === initiator);
    if (same) return same.connectionInfo;

    const iqn = targetIqn(lv);
    const portal = this.portal();
    const first = existing.length === 0;
    const chap = generateChap();
    try {
      if (first) {
        await this.targets.createBackstore(lv, await activate());
        await this.targets.createTarget(iqn);
        await this.targets.createLun(iqn, lv);
        await this.targets.requireAuth(iqn);
        if (portal.port !== DEFAULT_PORTAL.port) {
          // The default portal listens on every address at 3260; another port needs its own portal.
          await this.targets.deletePortal(iqn, DEFAULT_PORTAL.ip, DEFAULT_PORTAL.port);
          await this.targets.createPortal(iqn, portal.ip, portal.port);
        }
      }
      await this.targets.createAcl(iqn, initiator);
      await this.targets.setAclAuth(iqn, initiator, chap.username, chap.password);
      await this.targets.saveConfig();
    } catch (err) {
      // A half-made export would make the next connect fail with "already exists": take it down.
      if (first) {
        await this.targets.deleteTarget(iqn).catch(() => undefined);
        await this.targets.deleteBackstore(lv).catch(() => undefined);
      }
      throw err;
    }
    return {
      driverVolumeType: 'iscsi',
      data: {
        target_discovered: false,
        target_iqn: iqn,
        target_portal: `${portal.ip}:${portal.port}`,
        target_lun: 0,
        volume_id: volumeId,
        auth_method: 'CHAP',
        auth_username: chap.username,
        auth_password: chap.password,
      },
    };
  }

  /** Removes this initiator's ACL unless another connection of it remains, and the export with the last one. */
  async disconnect(lv: string, initiator: string, others: ConnectionRecord[]): Promise<void> {
    const iqn = targetIqn(lv);
    const remaining = iscsiOnly(others);
    if (!remaining.some((c) => c.connectorInfo.initiator === initiator)) {
      await tolerateMissing(this.targets.deleteAcl(iqn, initiator));
    }
    if (remaining.length === 0) {
      await tolerateMissing(this.targets.deleteTarget(iqn));
      await tolerateMissing(this.targets.deleteBackstore(lv));
    }
    await this.targets.saveConfig();
  }
}
