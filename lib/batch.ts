import { DecodeError } from './errors';
import { FRAME_HEAD, type SpoolRecord } from './spool';

/**
 * Several consecutive entries of one journal in one NATS message, so the
 * shipper and the server do one publish and one ack for many small changes.
 * A message is one of:
 *   spool frames, as they lie in the spool: (u32 entry length | u32 epoch | u64 seq | entry)…
 *     what the shipper sends: a slice of what it read from the spool, sent without a copy;
 *   'USB1' | u32 count | (u32 length | entry)…   (sent by earlier agents, still read);
 *   one bare entry ('USJ1' …)                     (likewise).
 * Each entry keeps its own checksum. A frame's length cannot be either magic: no entry is a
 * gigabyte long, so the first four bytes tell the forms apart.
 */
const BATCH_MAGIC = 0x55534231; // 'USB1'
const ENTRY_MAGIC = 0x55534a31; // 'USJ1'
/** Most entries one message carries; a batch also stays under MAX_BATCH_BYTES. */
export const MAX_BATCH_ENTRIES = 512;
export const MAX_BATCH_BYTES = 900 * 1024;

/** Bytes `record` takes in a message of frames. */
export function frameBytes(record: SpoolRecord): number {
  return FRAME_HEAD + record.entry.length;
}

/**
 * One message for consecutive spool records: the frames themselves when they lie side by
 * side in one buffer (as a spool read leaves them), else a copy of them.
 */
export function encodeFrames(records: readonly SpoolRecord[]): Buffer {
  const first = records[0].entry;
  const start = first.byteOffset - FRAME_HEAD;
  let end = first.byteOffset + first.length;
  let adjacent = start >= 0;
  for (let i = 1; i < records.length && adjacent; i++) {
    const e = records[i].entry;
    adjacent = e.buffer === first.buffer && e.byteOffset === end + FRAME_HEAD;
    end = e.byteOffset + e.length;
  }
  if (adjacent) return Buffer.from(first.buffer, start, end - start);
  const out = Buffer.allocUnsafe(records.reduce((n, r) => n + frameBytes(r), 0));
  let at = 0;
  for (const r of records) {
    // The frame head is the FRAME_HEAD bytes before the entry, where the spool read left it.
    at += Buffer.from(r.entry.buffer, r.entry.byteOffset - FRAME_HEAD, frameBytes(r)).copy(out, at);
  }
  return out;
}

/** A 'USB1' message for `entries` (the form earlier agents sent); the entry itself when alone. */
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
  if (b.length < 4) return [b];
  const magic = b.readUInt32BE(0);
  if (magic === ENTRY_MAGIC) return [b];
  if (magic === BATCH_MAGIC) return splitBatch(b);
  try {
    return splitFrames(b);
  } catch (err) {
    // Junk is far likelier than a broken shipper: say first that the message is of no known form.
    if (b.length < FRAME_HEAD + 4 || b.readUInt32BE(FRAME_HEAD) !== ENTRY_MAGIC) {
      throw new DecodeError(`message is neither an entry (USJ1), a batch (USB1) nor spool frames: ${(err as Error).message}`);
    }
    throw err;
  }
}

function splitBatch(b: Buffer): Buffer[] {
  const count = b.readUInt32BE(4);
  if (count < 2 || count > MAX_BATCH_ENTRIES) throw new DecodeError(`batch claims ${count} entries`);
  const out: Buffer[] = [];
  let off = 8;
  for (let i = 0; i < count; i++) {
    if (off + 4 > b.length) throw new DecodeError(`batch ends inside the length of entry ${i} of ${count}`);
    const len = b.readUInt32BE(off);
    off += 4;
    if (off + len > b.length) throw new DecodeError(`batch entry ${i} of ${count} runs past the message`);
    out.push(checkedEntry(b.subarray(off, off + len), `batch entry ${i} of ${count}`));
    off += len;
  }
  if (off !== b.length) throw new DecodeError(`batch has ${b.length - off} bytes after its ${count} entries`);
  return out;
}

function splitFrames(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < b.length) {
    if (out.length === MAX_BATCH_ENTRIES) throw new DecodeError(`message holds more than ${MAX_BATCH_ENTRIES} entries`);
    if (off + FRAME_HEAD > b.length) throw new DecodeError(`message ends inside the head of frame ${out.length}`);
    const len = b.readUInt32BE(off);
    off += FRAME_HEAD;
    if (off + len > b.length) throw new DecodeError(`frame ${out.length} runs past the message`);
    out.push(checkedEntry(b.subarray(off, off + len), `frame ${out.length}`));
    off += len;
  }
  return out;
}

function checkedEntry(e: Buffer, what: string): Buffer {
  if (e.length < 4 || e.readUInt32BE(0) !== ENTRY_MAGIC) throw new DecodeError(`${what} is not an entry`);
  return e;
}

/** The last entry a message carries (what `status` wants of a journal's newest message). */
export function lastEntry(data: Uint8Array): Buffer {
  const parts = splitMessage(data);
  return parts[parts.length - 1];
}
