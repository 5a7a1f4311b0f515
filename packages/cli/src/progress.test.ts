import { EventEmitter } from 'node:events';
import { expect, it } from 'vitest';
import { followProgress } from './progress.js';
import type { EventFrame, ProgressFrame } from './records.js';

const GIB = 1024 ** 3;

/** A terminal that keeps what was drawn, as lines without the cursor codes. */
function terminal(): { stream: NodeJS.WriteStream; lines(): string[] } {
  let written = '';
  // The part of a WriteStream that cli-progress uses.
  const stream = { isTTY: true, columns: 120, write: (chunk: string) => ((written += chunk), true) };
  return {
    stream: stream as unknown as NodeJS.WriteStream,
    lines: () => written.split(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/).filter((l) => l.trim() !== ''),
  };
}

const progress = (resource: Omit<ProgressFrame, 'kind'>): EventFrame => ({ event: 'progress', resource: { kind: 'volume', ...resource } });

it('draws a bar for the copy it follows, from the agent\'s progress pushes, to the end', () => {
  const agent = new EventEmitter<{ event: [EventFrame] }>();
  const tty = terminal();
  const stop = followProgress(agent, true, (p) => p.op === 'volume.clone', tty.stream);
  agent.emit('event', progress({ id: 'other', op: 'volume.revert', doneBytes: 0, totalBytes: GIB }));
  expect(tty.lines()).toEqual([]);
  agent.emit('event', progress({ id: 'copy', op: 'volume.clone', doneBytes: 0, totalBytes: GIB }));
  agent.emit('event', progress({ id: 'copy', op: 'volume.clone', doneBytes: GIB, totalBytes: GIB }));
  // Once following one copy, another's pushes do not move the bar (the last drawn is this one's end).
  agent.emit('event', progress({ id: 'another-copy', op: 'volume.clone', doneBytes: GIB / 4, totalBytes: GIB }));
  stop();
  const drawn = tty.lines();
  expect(drawn[0]).toMatch(/^volume\.clone ░+ 0% \| 0\/1024 MiB/);
  expect(drawn.at(-1)).toMatch(/^volume\.clone █+ 100% \| 1024\/1024 MiB/);
  expect(drawn.join('\n')).not.toContain('25%');
  expect(agent.listenerCount('event')).toBe(0);
});

it('draws nothing when not on a terminal (or --no-progress)', () => {
  const agent = new EventEmitter<{ event: [EventFrame] }>();
  const tty = terminal();
  const stop = followProgress(agent, false, () => true, tty.stream);
  agent.emit('event', progress({ id: 'copy', op: 'volume.clone', doneBytes: 1, totalBytes: 2 }));
  stop();
  expect(tty.lines()).toEqual([]);
});
