import { describe, expect, it } from 'vitest';
import { mapLimit } from './pool.js';

describe('mapLimit', () => {
  it('keeps order, never runs more than the limit, and a slow item does not hold a free slot', async () => {
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const results = await mapLimit([50, 5, 5, 5, 5], 2, async (ms, i) => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return i * 10;
    });
    expect(results).toEqual([0, 10, 20, 30, 40]);
    expect(most).toBe(2);
    // Items 1..4 ran one after another in the second slot while item 0 was still running.
    expect(started).toEqual([0, 1, 2, 3, 4]);
  });

  it('handles no items', async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });
});
