import { status } from '@grpc/grpc-js';
import { BackendError, BusyError, ConflictError, NotFoundError, UnavailableError } from '@kindling/sdk';
import { describe, expect, it } from 'vitest';
import { CsiError, grpcStatusOf } from './errors.js';

describe('grpcStatusOf', () => {
  it('maps Kindling codes to the CSI specification codes', () => {
    expect(grpcStatusOf(new ConflictError('has snapshots')).code).toBe(status.FAILED_PRECONDITION);
    expect(grpcStatusOf(new NotFoundError('gone')).code).toBe(status.NOT_FOUND);
    expect(grpcStatusOf(new UnavailableError('down')).code).toBe(status.UNAVAILABLE);
    expect(grpcStatusOf(new BusyError('later')).code).toBe(status.RESOURCE_EXHAUSTED);
    expect(grpcStatusOf(new CsiError(status.ABORTED, 'in flight'))).toEqual({ code: status.ABORTED, details: 'in flight' });
    expect(grpcStatusOf(new TypeError('bug')).code).toBe(status.INTERNAL);
  });

  it('gives a storage failure as INTERNAL with the command and its stderr tail', () => {
    const err = new BackendError('lvcreate failed', { command: ['lvcreate', '-L', '1g', 'vg'], exitCode: 5, stderrTail: 'Volume group "vg" has insufficient free space\n' });
    expect(grpcStatusOf(err)).toEqual({ code: status.INTERNAL, details: 'BACKEND_ERROR: lvcreate failed: lvcreate -L 1g vg: Volume group "vg" has insufficient free space' });
  });
});
