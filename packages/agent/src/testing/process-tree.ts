import { readdir, readFile } from 'node:fs/promises';

/** Every process under `pid`, read from /proc: commands may run in sessions and process groups of their own. */
export async function descendantsOf(pid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue;
    // The fields after the parenthesised name: state, then the parent's pid.
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const next = children.get(queue.shift()!) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}

const signal = (pid: number, sig: NodeJS.Signals): void => {
  try {
    process.kill(pid, sig);
  } catch (err) {
    // ESRCH: already gone.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
};

/**
 * SIGKILL of `pid` and everything under it, as if they died together (a host crash, an OOM kill of the
 * service's cgroup): the root is stopped first, so it neither starts nor notices anything meanwhile.
 */
export async function killTree(pid: number): Promise<void> {
  signal(pid, 'SIGSTOP');
  for (const child of await descendantsOf(pid)) signal(child, 'SIGKILL');
  signal(pid, 'SIGKILL');
}
