import { describe, expect, it } from 'vitest';
import { parseMountInfo } from './mounts.js';

describe('parseMountInfo', () => {
  it('reads device, root, mount point with escapes, options, type and source', () => {
    const text = [
      '36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext4 /dev/loop3 rw,errors=continue',
      '37 36 0:5 /loop3 /var/lib/kubelet/pods/p/volumeDevices/v rw shared:2 - devtmpfs udev rw,size=10k',
      'garbage',
    ].join('\n');
    expect(parseMountInfo(text)).toEqual([
      { device: '98:0', root: '/', mountPoint: '/mnt/with space', options: ['rw', 'noatime'], fsType: 'ext4', source: '/dev/loop3' },
      { device: '0:5', root: '/loop3', mountPoint: '/var/lib/kubelet/pods/p/volumeDevices/v', options: ['rw'], fsType: 'devtmpfs', source: 'udev' },
    ]);
  });
});
