/**
 * An execa transform that hands each line of a stream to `onLine` and passes the bytes on as they
 * are. It splits on `\r` as well as `\n`: progress meters redraw one line with `\r`.
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
    *transform(chunk: unknown) {
      // With `binary`, execa hands over raw bytes.
      emit(decoder.decode(chunk as Uint8Array, { stream: true }));
      yield chunk;
    },
    *final() {
      emit(`${decoder.decode()}\n`);
    },
    binary: true,
  };
}
