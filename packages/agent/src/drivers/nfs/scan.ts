import { messageOf } from '@kindling/protocol';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Location } from '@kindling/protocol';
import type { Runner } from '../../exec/run.js';
import type { Leftover, Stray } from '../driver.js';
import { readRecord, settleServed, walk, type Chain } from './chain.js';
import { servedBy } from './served.js';
import { isTempSnapshotId, parseName, tempSnapshotOwner, volumeFile, type ShareName } from './names.js';
import type { ImageFormat } from './qemu-img.js';
import { probesDuring } from './shares.js';

/** A published volume as storage holds it. */
interface FoundVolume {
  id: string;
  share: string;
  virtualSize: number;
  location: Location;
  snapshots: { id: string; file: string }[];
}

export interface ShareScan {
  volumes: FoundVolume[];
  leftovers: Leftover[];
  strays: Stray[];
}

const why = (err: unknown): string =>
  (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'vanished during the scan' : messageOf(err);

/** A file of one volume's, grouped with the volume's other files. */
type Named = { name: string; parsed: Exclude<ShareName, { kind: 'probe' }> };

const theirs = (owner: string): string => `another agent's (owner ${owner}) operation in progress, left to it`;

/** Volumes per page of a share's scan: what a scan holds at a time is a page, not the share. */
export const SCAN_PAGE = 1000;

/**
 * One share's volumes, this agent's leftovers (temporary names tagged with its `owner`) and what could
 * not be read, in pages of at most SCAN_PAGE volumes. Never throws: a file that vanishes, is
 * half-written, foreign, hostile or another agent's is skipped and reported as a stray, never removed.
 * Names Kindling never writes (not `volume-*`, not its probe files) are not ours and not reported.
 * Rejects with `signal`'s reason, between volumes, once it aborts.
 */
export async function* scanShare(
  run: Runner,
  share: string,
  dir: string,
  defaultFormat: ImageFormat,
  owner: string,
  signal?: AbortSignal,
): AsyncGenerator<ShareScan> {
  let page: ShareScan = { volumes: [], leftovers: [], strays: [] };
  let names: string[];
  const probes = probesDuring();
  try {
    names = await readdir(dir);
  } catch (err) {
    page.strays.push({ where: dir, reason: `cannot list the share: ${why(err)}` });
    yield page;
    return;
  } finally {
    probes.close();
  }
  // Every file of a volume starts with `volume-<id>`: sorted, they sit together, so one volume's files
  // are gathered at a time instead of a map of every volume's. Leftovers and strays go to the page at hand.
  names.sort();
  function* volumes(): Generator<Named[]> {
    let files: Named[] = [];
    for (const name of names) {
      const parsed = parseName(name);
      const where = join(dir, name);
      if (parsed === null) {
        if (name.startsWith('volume-')) page.strays.push({ where, reason: 'not a name Kindling writes' });
      } else if ('owner' in parsed && parsed.owner !== owner) {
        page.strays.push({ where, reason: theirs(parsed.owner) });
      } else if (parsed.kind === 'probe') {
        if (!probes.ours(where)) page.leftovers.push({ kind: 'temp-file', id: share, where });
      } else if (parsed.kind === 'part') {
        page.leftovers.push({ kind: 'partial-volume', id: parsed.volumeId, where });
      } else if (parsed.kind === 'info-tmp' || parsed.kind === 'revert') {
        page.leftovers.push({ kind: 'temp-file', id: parsed.volumeId, where });
      } else {
        if (files.length > 0 && files[0]!.parsed.volumeId !== parsed.volumeId) {
          yield files;
          files = [];
        }
        files.push({ name, parsed });
      }
    }
    if (files.length > 0) yield files;
  }
  for (const files of volumes()) {
    signal?.throwIfAborted();
    await scanFiles(run, share, dir, defaultFormat, owner, files, page);
    if (page.volumes.length >= SCAN_PAGE) {
      yield page;
      page = { volumes: [], leftovers: [], strays: [] };
    }
  }
  if (page.volumes.length + page.leftovers.length + page.strays.length > 0) yield page;
}

/** One volume's files (base, overlays, record, claims): the volume into `out`, or why not as a stray. */
async function scanFiles(run: Runner, share: string, dir: string, defaultFormat: ImageFormat, owner: string, files: Named[], out: ShareScan): Promise<void> {
  const id = files[0]!.parsed.volumeId;
  if (!files.some((f) => f.parsed.kind === 'base')) {
    // Deletes remove the base last: chain files without one are not a leftover of ours.
    for (const f of files) out.strays.push({ where: join(dir, f.name), reason: `no base file ${volumeFile(id)}` });
    return;
  }
  const chain: Chain = { run, dir, volumeId: id, baseFormat: defaultFormat, owner };
  try {
    await scanVolume(chain, share, files, out);
  } catch (err) {
    out.strays.push({ where: join(dir, volumeFile(id)), reason: why(err) });
  }
}

async function scanVolume(c: Chain, share: string, files: Named[], out: ShareScan): Promise<void> {
  let info = await readRecord(c);
  // A claim is what a live snapshot cut between its daemon's switch and its record leaves (with all
  // cut operations): only then is the process list read, and the switch recorded (settleServed).
  if (files.some((f) => f.parsed.kind === 'claim')) {
    const served = await servedBy(c.dir, c.volumeId);
    if (served) info = await settleServed(c, served, info ?? { active: volumeFile(c.volumeId) });
  }
  const active = info?.active ?? volumeFile(c.volumeId);
  const images = await walk(c, active, true);
  const virtualSize = images[0]!.virtualSize;
  // Kindling makes no volume smaller than 1 GiB; an empty base is not a finished one.
  if (virtualSize === 0) throw new Error('it has a virtual size of 0');
  const found: FoundVolume = {
    id: c.volumeId,
    share,
    virtualSize,
    location: { share, format: images.at(-1)!.format, activeFile: active },
    snapshots: [],
  };
  const leftovers: Leftover[] = [];
  const strays: Stray[] = [];
  const recorded = new Set<string>();
  for (const [key, file] of Object.entries(info ?? {})) {
    recorded.add(file);
    if (key === 'active') continue;
    const tempOwner = tempSnapshotOwner(key);
    if (!isTempSnapshotId(key)) found.snapshots.push({ id: key, file });
    else if (tempOwner === c.owner) leftovers.push({ kind: 'temp-snapshot', id: c.volumeId, where: join(c.dir, file) });
    else strays.push({ where: join(c.dir, file), reason: tempOwner ? theirs(tempOwner) : 'a temporary snapshot that names no owner' });
  }
  // This agent's claims (scanShare passed no other agent's here), by the overlay they claim.
  const claimed = new Map<string, string[]>();
  for (const { name, parsed } of files) {
    if (parsed.kind !== 'claim') continue;
    const overlay = name.slice(0, name.lastIndexOf('.claim-'));
    claimed.set(overlay, [...(claimed.get(overlay) ?? []), name]);
  }
  for (const { name, parsed } of files) {
    if (parsed.kind !== 'overlay' || recorded.has(name)) continue;
    if (images.some((i) => i.file === name)) strays.push({ where: join(c.dir, name), reason: 'in the chain but in no record' });
    else if (claimed.delete(name)) leftovers.push({ kind: 'orphan-overlay', id: c.volumeId, where: join(c.dir, name) });
    // Unclaimed: another agent's snapshot of a volume it holds may be between its overlay and its record.
    else strays.push({ where: join(c.dir, name), reason: 'an overlay in no record that this agent never claimed' });
  }
  // Claims on overlays that are recorded or gone: the operation finished or never made its overlay.
  for (const claims of claimed.values()) {
    for (const claim of claims) leftovers.push({ kind: 'temp-file', id: c.volumeId, where: join(c.dir, claim) });
  }
  out.volumes.push(found);
  out.leftovers.push(...leftovers);
  out.strays.push(...strays);
}
