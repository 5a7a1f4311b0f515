import { Presets, SingleBar } from 'cli-progress';
import type { EventFrame, ProgressFrame } from './records.js';

const MIB = 1024 * 1024;

/** What a bar needs of an Agent: its pushes. */
export interface EventSource {
  on(event: 'event', listener: (frame: EventFrame) => void): unknown;
  off(event: 'event', listener: (frame: EventFrame) => void): unknown;
}

/**
 * A bar on stderr fed by the agent's `progress` pushes for the first copy that `match` accepts; it
 * then follows that resource only. Nothing is drawn when `enabled` is false (not a terminal, or
 * `--no-progress`) or when the agent sends no progress (an older agent): the command just waits.
 * Returns the function that stops following.
 */
export function followProgress(
  agent: EventSource,
  enabled: boolean,
  match: (p: ProgressFrame) => boolean,
  /** stderr, so stdout stays the result alone. */
  stream: NodeJS.WriteStream = process.stderr,
): () => void {
  if (!enabled) return () => undefined;
  let bar: SingleBar | null = null;
  let followed: string | null = null;
  const onEvent = (frame: EventFrame) => {
    if (frame.event !== 'progress') return;
    const p = frame.resource;
    if (followed === null ? !match(p) : p.id !== followed) return;
    followed = p.id;
    const payload = { doneMiB: Math.floor(p.doneBytes / MIB), totalMiB: Math.ceil(p.totalBytes / MIB) };
    if (bar) {
      bar.setTotal(p.totalBytes);
      bar.update(p.doneBytes, payload);
      return;
    }
    bar = new SingleBar(
      { stream, format: `${p.op} {bar} {percentage}% | {doneMiB}/{totalMiB} MiB | ETA {eta_formatted}`, hideCursor: true },
      Presets.shades_classic,
    );
    bar.start(p.totalBytes, p.doneBytes, payload);
  };
  agent.on('event', onEvent);
  return () => {
    agent.off('event', onEvent);
    bar?.stop();
  };
}
