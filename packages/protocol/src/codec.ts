import { Packr } from 'msgpackr';
import { ProtocolError, messageOf } from './errors.js';

// Plain maps and no record extension: frames stay readable by any msgpack peer.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function encode(value: unknown): Buffer {
  return packr.pack(value);
}

export function decode(bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes);
  } catch (err) {
    throw new ProtocolError(`undecodable frame: ${messageOf(err)}`);
  }
}
