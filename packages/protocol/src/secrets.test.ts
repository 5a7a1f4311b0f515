import { describe, expect, it } from 'vitest';
import { SECRET_CONNECTION_FIELDS, withoutSecrets } from './secrets.js';

describe('withoutSecrets', () => {
  it('removes every secret field of every connectionInfo, however deep, and leaves the input as it was', () => {
    const data = { target_lun: 0, ...Object.fromEntries(SECRET_CONNECTION_FIELDS.map((k) => [k, `s-${k}`])) };
    const conn = { id: 'c', connectionInfo: { driverVolumeType: 'iscsi', data } };
    const frame = { id: 1, ok: true, result: { volumes: [], connections: [conn], nested: { connection: conn } } };
    const clean = withoutSecrets(frame);
    expect(JSON.stringify(clean)).not.toMatch(/s-/);
    expect(clean.result.connections[0]?.connectionInfo).toEqual({ driverVolumeType: 'iscsi', data: { target_lun: 0 } });
    expect(frame.result.connections[0]?.connectionInfo.data).toEqual(data);
  });
});
