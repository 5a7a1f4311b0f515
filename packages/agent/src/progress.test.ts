import { describe, expect, it } from 'vitest';
import type { Progress } from '@kindling/protocol';
import { forSubject, progressMeter, qemuImgFraction } from './progress.js';
import { inRequest } from './request-context.js';

describe('progress', () => {
  it('reports bytes done for the resource and request the copy runs for, first and last always', () => {
    const seen: Progress[] = [];
    const publish = (p: Progress) => seen.push(p);
    inRequest({ op: 'volume.clone', requestId: 'r-1', queued: false }, () =>
      forSubject({ kind: 'volume', id: 'v-1', publish }, () => {
        const meter = progressMeter(100);
        meter(0);
        meter(10);
        meter(50);
        meter(100);
      }),
    );
    expect(seen.map((p) => p.doneBytes)).toEqual([0, 100]);
    expect(seen[1]).toEqual({ kind: 'volume', id: 'v-1', op: 'volume.clone', doneBytes: 100, totalBytes: 100, requestId: 'r-1' });
  });

  it('reports nothing outside an operation', () => {
    expect(() => progressMeter(100)(50)).not.toThrow();
  });

  it('reads qemu-img -p lines', () => {
    expect(qemuImgFraction('    (12.50/100%)')).toBe(0.125);
    expect(qemuImgFraction('    (100.00/100%)')).toBe(1);
    expect(qemuImgFraction('qemu-img: error')).toBeNull();
  });
});
