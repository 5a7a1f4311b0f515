import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackendError } from '@kindling/protocol';
import { readInfo, writeInfo } from './info-file.js';

const VOL = '3f1d8a52-4a7e-4c1b-9d2e-6b5a0c7e9f10';
const SNAP_A = 'a1b2c3d4-0000-4000-8000-000000000001';
const SNAP_B = 'a1b2c3d4-0000-4000-8000-000000000002';

describe('volume-<id>.info', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kindling-info-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("is written as cinder's json.dump(indent=1, sort_keys=True) and read back", async () => {
    const path = join(dir, `volume-${VOL}.info`);
    const info = { active: `volume-${VOL}.${SNAP_B}`, [SNAP_B]: `volume-${VOL}.${SNAP_B}`, [SNAP_A]: `volume-${VOL}.${SNAP_A}` };
    await writeInfo(dir, VOL, '0123456789ab', info);
    expect(await readFile(path, 'utf8')).toBe(
      `{\n "${SNAP_A}": "volume-${VOL}.${SNAP_A}",\n "${SNAP_B}": "volume-${VOL}.${SNAP_B}",\n "active": "volume-${VOL}.${SNAP_B}"\n}`,
    );
    expect(await readInfo(path, VOL)).toEqual(info);
    expect(await readdir(dir)).toEqual([`volume-${VOL}.info`]);
  });

  it('is null when the volume never had a snapshot', async () => {
    expect(await readInfo(join(dir, `volume-${VOL}.info`), VOL)).toBeNull();
  });

  it('refuses a record naming files outside the volume', async () => {
    const path = join(dir, `volume-${VOL}.info`);
    await writeFile(path, JSON.stringify({ active: '../../etc/shadow' }));
    await expect(readInfo(path, VOL)).rejects.toBeInstanceOf(BackendError);
    await writeFile(path, JSON.stringify({ active: `volume-${VOL}`, [SNAP_A]: `volume-${SNAP_A}` }));
    await expect(readInfo(path, VOL)).rejects.toThrow('is not a snapshot record of volume');
    await writeFile(path, '{ not json');
    await expect(readInfo(path, VOL)).rejects.toThrow('is not valid JSON');
  });
});
