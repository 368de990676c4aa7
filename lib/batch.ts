import { DecodeError } from './errors';

/**
 * Several consecutive entries of one journal in one NATS message, so the
 * shipper and the server do one publish and one ack for many small changes:
 *   'USB1' | u32 count | (u32 length | entry)…
 * Each entry keeps its own checksum; a message holding one entry is sent bare.
 */
const BATCH_MAGIC = 0x55534231; // 'USB1'
const ENTRY_MAGIC = 0x55534a31; // 'USJ1'
/** Most entries one message carries; a batch also stays under MAX_BATCH_BYTES. */
export const MAX_BATCH_ENTRIES = 512;
export const MAX_BATCH_BYTES = 900 * 1024;

/** One message for `entries`: the entry itself when alone. */
export function encodeBatch(entries: readonly Buffer[]): Buffer {
  if (entries.length === 1) return entries[0];
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(BATCH_MAGIC, 0);
  head.writeUInt32BE(entries.length, 4);
  const parts: Buffer[] = [head];
  for (const e of entries) {
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(e.length, 0);
    parts.push(len, e);
  }
  return Buffer.concat(parts);
}

/** The entries a message carries (still to be decoded one by one); DecodeError when its framing is broken. */
export function splitMessage(data: Uint8Array): Buffer[] {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 8 || b.readUInt32BE(0) !== BATCH_MAGIC) return [b];
  const count = b.readUInt32BE(4);
  if (count < 2 || count > MAX_BATCH_ENTRIES) throw new DecodeError(`batch claims ${count} entries`);
  const out: Buffer[] = [];
  let off = 8;
  for (let i = 0; i < count; i++) {
    if (off + 4 > b.length) throw new DecodeError(`batch ends inside the length of entry ${i} of ${count}`);
    const len = b.readUInt32BE(off);
    off += 4;
    if (off + len > b.length) throw new DecodeError(`batch entry ${i} of ${count} runs past the message`);
    const e = b.subarray(off, off + len);
    if (e.length < 4 || e.readUInt32BE(0) !== ENTRY_MAGIC) throw new DecodeError(`batch entry ${i} of ${count} is not an entry`);
    out.push(e);
    off += len;
  }
  if (off !== b.length) throw new DecodeError(`batch has ${b.length - off} bytes after its ${count} entries`);
  return out;
}

/** The last entry a message carries (what `status` wants of a journal's newest message). */
export function lastEntry(data: Uint8Array): Buffer {
  const parts = splitMessage(data);
  return parts[parts.length - 1];
}
