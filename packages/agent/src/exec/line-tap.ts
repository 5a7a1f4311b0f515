/**
 * Hands each line of a stream to `onLine` as its bytes arrive. It splits on `\r` as well as `\n`:
 * progress meters redraw one line with `\r`. `end` hands over a last line that had no line end.
 */
export function lineTap(onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let rest = '';
  const emit = (text: string) => {
    const lines = (rest + text).split(/[\r\n]/);
    rest = lines.pop() ?? '';
    for (const line of lines) if (line) onLine(line);
  };
  return {
    push: (chunk: Uint8Array) => emit(decoder.decode(chunk, { stream: true })),
    end: () => emit(`${decoder.decode()}\n`),
  };
}
