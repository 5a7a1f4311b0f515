import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** One line of /proc/self/mountinfo: what the node's mount table says, the only record kept. */
export interface MountEntry {
  /** major:minor of the mounted filesystem or device. */
  device: string;
  /** Path within the filesystem (a bind of a subtree or of a device node shows it here). */
  root: string;
  mountPoint: string;
  options: string[];
  fsType: string;
  source: string;
}

// The kernel writes space, tab, newline and backslash in paths as octal escapes.
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const [fsType, source] = right.split(' ');
    entries.push({ device: f[2] ?? '', root: unescape(f[3] ?? ''), mountPoint: unescape(f[4] ?? ''), options: (f[5] ?? '').split(','), fsType: fsType ?? '', source: unescape(source ?? '') });
  }
  return entries;
}

export async function mountTable(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The topmost mount at `path`, if any. */
export async function mountAt(path: string): Promise<MountEntry | null> {
  const found = (await mountTable()).filter((m) => m.mountPoint === path);
  return found[found.length - 1] ?? null;
}

/**
 * `path` as the mount table writes it: `//` and `..` folded and a symlinked parent resolved, so a
 * path handed over in another spelling still finds its mount. The last part is kept as given: a
 * target that is itself a symlink is never followed out of the CO's folder.
 */
export async function canonical(path: string): Promise<string> {
  const full = resolve(path);
  const parent = await realpath(dirname(full)).catch(() => dirname(full));
  return join(parent, basename(full));
}
