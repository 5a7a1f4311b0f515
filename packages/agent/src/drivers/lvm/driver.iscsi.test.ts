// The LVM driver's iSCSI export through targetcli (recording runner).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendError, InvalidArgumentError, type ConnectionInfo } from '@kindling/protocol';
import {
  ACTIVATE, INITIATOR, INITIATOR2, IQN, V1, VG, aclAuth, conn, fake, removeConfDir, started, thick,
} from '../../testing/lvm-fake.js';

afterAll(removeConfDir);

describe('LvmDriver iSCSI export through targetcli (recording runner)', () => {
  it('exports on first connect: activate, backstore, target, LUN, CHAP, ACL, save', async () => {
    const f = fake();
    const driver = await started(f);
    const att = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, []);
    const data = att.connectionInfo.data;
    expect(att.path).toBeNull();
    expect(att.connectionInfo.driverVolumeType).toBe('iscsi');
    expect(data).toMatchObject({
      target_discovered: false,
      target_iqn: IQN,
      target_portal: '192.0.2.10:3260',
      target_lun: 0,
      volume_id: V1,
      auth_method: 'CHAP',
    });
    expect(data.auth_username).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(data.auth_password).toMatch(/^[A-Za-z0-9]{16}$/);
    expect(f.argv()).toEqual([
      [...ACTIVATE, `${VG}/volume-${V1}`],
      ['targetcli', '/backstores/block', 'create', `name=volume-${V1}`, `dev=/dev/${VG}/volume-${V1}`],
      ['targetcli', '/iscsi', 'create', IQN],
      ['targetcli', `/iscsi/${IQN}/tpg1/luns`, 'create', `/backstores/block/volume-${V1}`],
      ['targetcli', `/iscsi/${IQN}/tpg1`, 'set', 'attribute', 'authentication=1', 'generate_node_acls=0'],
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'create', INITIATOR],
      ['targetcli', 'saveconfig'],
    ]);
    // CHAP goes into configfs, never on a command line where `ps` would show the secret.
    expect(readFileSync(join(aclAuth(IQN, INITIATOR), 'userid'), 'utf8')).toBe(data.auth_username);
    expect(readFileSync(join(aclAuth(IQN, INITIATOR), 'password'), 'utf8')).toBe(data.auth_password);
    expect(f.argv().flat().join(' ')).not.toContain(String(data.auth_password));
  });

  it('moves the portal when the port is not 3260', async () => {
    const f = fake();
    const driver = await started(f, { targetPort: 3261 });
    const att = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, []);
    expect(att.connectionInfo.data.target_portal).toBe('192.0.2.10:3261');
    expect(f.argv()).toContainEqual(['targetcli', `/iscsi/${IQN}/tpg1/portals`, 'delete', '0.0.0.0', '3260']);
    expect(f.argv()).toContainEqual(['targetcli', `/iscsi/${IQN}/tpg1/portals`, 'create', '192.0.2.10', '3261']);
  });

  it('adds only an ACL for a second host, and reuses the ACL of a host already connected', async () => {
    const f = fake();
    const driver = await started(f);
    const first = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, []);
    const existing = [conn({ host: 'compute-1', initiator: INITIATOR }, first.connectionInfo)];
    f.reset();
    const second = await driver.connect(thick(V1), { host: 'compute-2', initiator: INITIATOR2 }, existing);
    expect(f.argv()).toEqual([
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'create', INITIATOR2],
      ['targetcli', 'saveconfig'],
    ]);
    expect(readFileSync(join(aclAuth(IQN, INITIATOR2), 'password'), 'utf8')).toBe(second.connectionInfo.data.auth_password);
    expect(second.connectionInfo.data.auth_password).not.toBe(first.connectionInfo.data.auth_password);
    f.reset();
    const again = await driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, existing);
    expect(again.connectionInfo).toEqual(first.connectionInfo);
    expect(f.argv()).toEqual([]);
  });

  it('removes the ACL on disconnect, and the whole export with the last connection', async () => {
    const f = fake();
    const driver = await started(f);
    const info: ConnectionInfo = { driverVolumeType: 'iscsi', data: {} };
    const c1 = conn({ host: 'compute-1', initiator: INITIATOR }, info);
    const c2 = conn({ host: 'compute-2', initiator: INITIATOR2 }, info);
    await driver.disconnect(thick(V1), c1, [c2]);
    expect(f.argv()).toEqual([
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'delete', INITIATOR],
      ['targetcli', 'saveconfig'],
    ]);
    f.reset();
    await driver.disconnect(thick(V1), c2, []);
    expect(f.argv()).toEqual([
      ['targetcli', `/iscsi/${IQN}/tpg1/acls`, 'delete', INITIATOR2],
      ['targetcli', '/iscsi', 'delete', IQN],
      ['targetcli', '/backstores/block', 'delete', `volume-${V1}`],
      ['targetcli', 'saveconfig'],
      ['lvchange', '-a', 'n', `${VG}/volume-${V1}`],
    ]);
  });

  it('takes a half-made export down when a step fails', async () => {
    const f = fake({ fail: (a) => (a[1] === `/iscsi/${IQN}/tpg1/luns` ? 'No such path /backstores/block/x' : undefined) });
    const driver = await started(f);
    await expect(driver.connect(thick(V1), { host: 'compute-1', initiator: INITIATOR }, [])).rejects.toBeInstanceOf(BackendError);
    expect(f.argv().slice(-2)).toEqual([
      ['targetcli', '/iscsi', 'delete', IQN],
      ['targetcli', '/backstores/block', 'delete', `volume-${V1}`],
    ]);
  });

  it('answers a connector on this host with a local attach', async () => {
    const f = fake();
    const driver = await started(f);
    const att = await driver.connect(thick(V1), { host: 'agent-host' }, []);
    expect(att.connectionInfo.driverVolumeType).toBe('local');
    expect(f.argv()).toEqual([[...ACTIVATE, `${VG}/volume-${V1}`]]);
  });

  it('validates the initiator before it can reach argv', async () => {
    const driver = await started(fake());
    expect(() => driver.validateConnector({ host: 'compute-1' })).toThrow(InvalidArgumentError);
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: 'iqn.2004-10.com.x:h; rm -rf /' })).toThrow(
      InvalidArgumentError,
    );
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: '/iscsi delete' })).toThrow(InvalidArgumentError);
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: INITIATOR })).not.toThrow();
    expect(() => driver.validateConnector({ host: 'compute-1', initiator: 'eui.02004567A425678D' })).not.toThrow();
    expect(() => driver.validateConnector({ host: 'agent-host' })).not.toThrow();
  });
});
