import { rm } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { InvalidArgumentError } from '@kindling/protocol';
import type { Leftover } from '../driver.js';
import { baseFormatOnShare, deleteSnapshot, removeOrphanOverlay, type Chain } from './chain.js';
import { parseName, tempSnapshotOwner } from './names.js';

/**
 * Removes one leftover scan() reported, after checking its name still says what it is and that it is
 * this agent's (its owner tag, or its claim on an orphan overlay; chainOf gives the owner): a partial
 * volume or temporary file is unlinked; a clone's temporary snapshot is deleted from the source's
 * chain as any snapshot is (its overlay committed, so data written since is kept); an orphan overlay
 * is unlinked once the record and the chain are seen not to use it.
 */
export async function removeLeftover(leftover: Leftover, shareDirs: string[], chainOf: (dir: string, volumeId: string) => Chain): Promise<void> {
  const dir = resolve(dirname(leftover.where));
  const parsed = parseName(basename(leftover.where));
  const refuse = () =>
    new InvalidArgumentError(`${leftover.where} is not a ${leftover.kind} leftover of ${leftover.id}`, { ...leftover });
  if (!shareDirs.some((d) => resolve(d) === dir) || parsed === null) throw refuse();
  const guess = chainOf(dir, leftover.id);
  if ('owner' in parsed && parsed.owner !== guess.owner) throw refuse();
  const ofVolume = parsed.kind !== 'probe' && parsed.volumeId === leftover.id;
  switch (leftover.kind) {
    case 'partial-volume':
      if (parsed.kind !== 'part' || !ofVolume) throw refuse();
      return rm(leftover.where, { force: true });
    case 'temp-file':
      if (parsed.kind !== 'probe' && !((parsed.kind === 'info-tmp' || parsed.kind === 'revert' || parsed.kind === 'claim') && ofVolume)) throw refuse();
      return rm(leftover.where, { force: true });
    case 'temp-snapshot':
    case 'orphan-overlay': {
      if (parsed.kind !== 'overlay' || !ofVolume) throw refuse();
      const c: Chain = { ...guess, baseFormat: await baseFormatOnShare(guess) };
      if (leftover.kind === 'orphan-overlay') return removeOrphanOverlay(c, basename(leftover.where));
      if (tempSnapshotOwner(parsed.snapshotId) !== c.owner) throw refuse();
      return deleteSnapshot(c, parsed.snapshotId);
    }
    default:
      throw refuse();
  }
}
