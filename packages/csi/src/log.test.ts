import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { rpcLine } from './log.js';

describe('the RPC log', () => {
  it('names the method, its duration and code, and keeps no secret of the request', () => {
    const request = {
      volumeId: 'h:nfs:1',
      secrets: { password: 'p4ss-in-secrets' },
      volumeContext: { auth_username: 'chap-user', auth_password: 'chap-s3cret', backend: 'lvm' },
      parameters: { 'csi.storage.k8s.io/node-stage-secret-name': 'db-creds' },
    };
    const line = rpcLine('NodeStageVolume', request, 12.5, { code: status.NOT_FOUND, details: 'volume h:nfs:1 does not exist' });
    const entry = JSON.parse(line) as Record<string, unknown>;
    expect(entry).toMatchObject({ event: 'rpc', method: 'NodeStageVolume', durationMs: 12.5, code: 'NOT_FOUND', details: 'volume h:nfs:1 does not exist' });
    expect(entry['request']).toMatchObject({ volumeId: 'h:nfs:1', volumeContext: { backend: 'lvm' } });
    for (const secret of ['p4ss-in-secrets', 'chap-user', 'chap-s3cret', 'db-creds']) expect(line).not.toContain(secret);
    expect(JSON.parse(rpcLine('Probe', {}, 1, null))).toMatchObject({ method: 'Probe', code: 'OK' });
  });

  it('keeps the paging tokens of a listing, which are positions, not credentials', () => {
    const entry = JSON.parse(rpcLine('ListVolumes', { maxEntries: 10, startingToken: '20' }, 1, null)) as { request: unknown };
    expect(entry.request).toEqual({ maxEntries: 10, startingToken: '20' });
  });
});
