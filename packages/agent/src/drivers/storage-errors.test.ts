import { describe, expect, it } from 'vitest';
import { BackendError, NotFoundError } from '@kindling/protocol';
import type { Driver } from './driver.js';
import { storageError, withStorageErrors } from './storage-errors.js';

describe('storage errors', () => {
  it('types an OS error from a file call as BACKEND_ERROR naming the call; leaves others as they are', () => {
    const eperm = Object.assign(new Error("EPERM: operation not permitted, unlink '/s/volume-x'"), {
      syscall: 'unlink',
      code: 'EPERM',
      path: '/s/volume-x',
    });
    const typed = storageError(eperm);
    expect(typed).toBeInstanceOf(BackendError);
    expect((typed as BackendError).details).toEqual({ syscall: 'unlink', errno: 'EPERM', path: '/s/volume-x' });
    expect((typed as BackendError).cause).toBe(eperm);
    const bug = new TypeError('x is undefined');
    expect(storageError(bug)).toBe(bug);
    const kindling = new NotFoundError('no volume');
    expect(storageError(kindling)).toBe(kindling);
  });

  it('wraps every call of a driver, sync or async', async () => {
    const fail = () => Object.assign(new Error('EIO'), { syscall: 'read', code: 'EIO' });
    const driver = withStorageErrors({
      name: 'd',
      deleteVolume: async () => Promise.reject(fail()),
      validateConnector: () => {
        throw fail();
      },
    } as unknown as Driver);
    expect(driver.name).toBe('d');
    await expect(driver.deleteVolume({ id: 'x', size: 1, location: {} })).rejects.toBeInstanceOf(BackendError);
    expect(() => driver.validateConnector({})).toThrow(BackendError);
  });
});
