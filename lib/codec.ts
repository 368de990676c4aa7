import { crc32 } from 'node:zlib';
import { DecodeError } from './errors';
import { CONTROL_OPS, DATA_OPS, OBJECT_OPS, OBJECT_ROOT, type Entry, type EntryHeader, type OpName } from './entry';
import { isJobId, isObjectName, MAX_KEY_DEPTH, MAX_KEY_SEGMENT } from './objects';
import { isPageSize } from './sqlite-pages';
import { validJournalName } from './subjects';

/**
 * Wire and spool form of an entry:
 *   'USJ1' | u32 header length | header JSON | data | u32 CRC-32 of everything before it
 * The checksum travels end to end: written by the agent, checked by the replayer.
 */
const MAGIC = 0x55534a31; // 'USJ1'
const FIXED = 12; // magic + header length + trailing crc
/** Headers are small; anything larger is hostile or broken. */
export const MAX_HEADER_BYTES = 64 * 1024;

/** Encodes an entry; the result is self-checking. */
export function encodeEntry(header: EntryHeader, data: Buffer = EMPTY): Buffer {
  const json = JSON.stringify(header);
  const out = Buffer.allocUnsafe(entrySize(json, data));
  writeEntry(out, 0, json, data);
  return out;
}

/** Bytes the entry with this header JSON and data takes. */
export function entrySize(headerJson: string, data: Buffer): number {
  return FIXED + Buffer.byteLength(headerJson, 'utf8') + data.length;
}

/**
 * Encodes an entry whose header is already JSON into `out` at `at`, which must have
 * entrySize() bytes of room: the journal encodes straight into its write buffer.
 * Returns the bytes written.
 */
export function writeEntry(out: Buffer, at: number, headerJson: string, data: Buffer): number {
  out.writeUInt32BE(MAGIC, at);
  const hlen = out.write(headerJson, at + 8, 'utf8');
  out.writeUInt32BE(hlen, at + 4);
  data.copy(out, at + 8 + hlen);
  const end = at + 8 + hlen + data.length;
  out.writeUInt32BE(crc32(out.subarray(at, end)), end);
  return end + 4 - at;
}

/**
 * Checks an entry's framing and checksum, not what its header says: for a reader of our own spool
 * that only passes the bytes on (the shipper), since whoever applies them decodes and validates
 * each entry anyway. Throws DecodeError naming what is wrong.
 */
export function checkChecksum(buf: Buffer): void {
  if (buf.length < FIXED) throw new DecodeError(`entry is ${buf.length} bytes, shorter than the ${FIXED}-byte frame`);
  if (buf.readUInt32BE(0) !== MAGIC) throw new DecodeError('entry does not start with the USJ1 magic');
  const hlen = buf.readUInt32BE(4);
  if (hlen > MAX_HEADER_BYTES || FIXED + hlen > buf.length) throw new DecodeError(`entry header length ${hlen} does not fit in ${buf.length} bytes`);
  const end = buf.length - 4;
  const want = buf.readUInt32BE(end);
  const got = crc32(buf.subarray(0, end));
  if (want !== got) throw new DecodeError(`entry checksum mismatch (stored ${want.toString(16)}, computed ${got.toString(16)})`);
}

/** Where an entry stands in its journal, as its header says. */
export interface EntryPlace { j: string; e: number; s: number; t: number }

/**
 * The journal place of an entry that does not decode, when its checksum holds and its header
 * names a valid journal, epoch, sequence and time (an operation or field this version does not
 * know, an invalid value); undefined when not even that can be read.
 */
export function entryPlace(buf: Uint8Array): EntryPlace | undefined {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  try {
    checkChecksum(b);
    const v: unknown = JSON.parse(b.toString('utf8', 8, 8 + b.readUInt32BE(4)));
    if (!isObj(v) || typeof v.j !== 'string' || !validJournalName(v.j) || !nat(v.e) || !nat(v.s) || v.s === 0 || !nat(v.t)) return undefined;
    return { j: v.j, e: v.e, s: v.s, t: v.t };
  } catch {
    return undefined;
  }
}

/** Decodes and validates an entry; throws DecodeError naming what is wrong. */
export function decodeEntry(buf: Uint8Array): Entry {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  checkChecksum(b);
  const hlen = b.readUInt32BE(4);
  const end = b.length - 4;
  let parsed: unknown;
  try {
    parsed = JSON.parse(b.toString('utf8', 8, 8 + hlen));
  } catch (err) {
    throw new DecodeError('entry header is not JSON', { cause: err });
  }
  const header = checkHeader(parsed);
  const data = b.subarray(8 + hlen, end);
  if (data.length > 0 && !DATA_OPS.has(header.op)) throw new DecodeError(`${header.op} entry carries ${data.length} data bytes`);
  if (header.op === 'sqlite' && (header.kind === 'image') === (header.bw !== undefined || header.bk !== undefined)) {
    throw new DecodeError(`sqlite ${header.kind} entry ${header.kind === 'image' ? 'names' : 'lacks'} the position it builds on`);
  }
  if (header.op === 'sqlite' && (header.bw === undefined) !== (header.bk === undefined)) throw new DecodeError('sqlite entry names half of the position it builds on');
  if (data.length > 0 && header.op === 'config' && header.del === true) throw new DecodeError(`config deletion carries ${data.length} data bytes`);
  if (data.length > 0 && header.op === 'job' && !(header.ev === 'enqueued' && header.captured === true)) {
    throw new DecodeError(`job ${header.ev} entry without a captured payload carries ${data.length} data bytes`);
  }
  return { header, data };
}

const EMPTY = Buffer.alloc(0);

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function nat(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
function str(v: unknown, max = 4096): v is string {
  return typeof v === 'string' && v.length <= max;
}
function u32(v: unknown): v is number {
  return nat(v) && v <= 0xffffffff;
}
/** A SQLite position's generation: a WAL's two salts in hex, or `r` (rollback-journal mode). */
function isGeneration(v: unknown): v is string {
  return v === 'r' || (typeof v === 'string' && /^[0-9a-f]{16}$/.test(v));
}
function mode(v: unknown): v is number {
  return nat(v) && v <= 0o7777;
}

/** Fields each operation must have, with their checks. */
const OP_FIELDS: Record<OpName, Record<string, (v: unknown) => boolean>> = {
  put: { mode },
  append: { at: nat },
  pwrite: { at: nat },
  truncate: { size: nat },
  mkdir: { mode },
  rm: {},
  rename: { toRoot: (v) => str(v, 64), to: (v) => str(v) },
  symlink: { target: (v) => str(v) && v !== '' },
  link: { fromRoot: (v) => str(v, 64), from: (v) => str(v) },
  chmod: { mode },
  sqlite: {
    kind: (v) => v === 'wal' || v === 'rollback' || v === 'image',
    w: isGeneration,
    k: u32,
    bw: (v) => v === undefined || isGeneration(v),
    bk: (v) => v === undefined || u32(v),
    ps: isPageSize,
  },
  config: {
    key: (v) => Array.isArray(v) && v.length <= MAX_KEY_DEPTH && v.every((k) => typeof k === 'string' && k !== '' && k.length <= MAX_KEY_SEGMENT),
    del: (v) => v === undefined || v === true,
  },
  job: {
    id: isJobId,
    ev: (v) => v === 'enqueued' || v === 'started' || v === 'completed' || v === 'failed',
    captured: (v) => v === undefined || typeof v === 'boolean',
    front: (v) => v === undefined || v === true,
    label: (v) => v === undefined || str(v, 128),
  },
  checkpoint: {
    name: isObjectName,
    id: isJobId,
    cut: (v) => Array.isArray(v) && v.length > 0 && v.length <= MAX_CUT && v.every((c) => isObj(c) && typeof c.j === 'string' && validJournalName(c.j) && nat(c.e) && nat(c.s) && c.s > 0),
  },
  tx: { id: isJobId, ev: (v) => v === 'begin' || v === 'end' },
};

/** Journals one checkpoint may cut: more live agents than this on one stream is not a service. */
const MAX_CUT = 4096;

function checkHeader(v: unknown): EntryHeader {
  if (!isObj(v)) throw new DecodeError('entry header is not an object');
  const bad = (field: string): never => {
    throw new DecodeError(`entry header field "${field}" is missing or invalid`);
  };
  // The journal name becomes a subject token and a file name under --state: one token, no separator.
  if (typeof v.j !== 'string' || !validJournalName(v.j)) bad('j');
  if (!nat(v.e)) bad('e');
  if (!nat(v.s) || v.s === 0) bad('s');
  if (!nat(v.t)) bad('t');
  if (v.b !== undefined && !nat(v.b)) bad('b');
  if (v.o !== undefined && !nat(v.o)) bad('o');
  if (typeof v.op !== 'string' || !Object.hasOwn(OP_FIELDS, v.op)) {
    throw new DecodeError(`entry operation "${String(v.op)}" is unknown`);
  }
  if (v.x !== undefined && !isJobId(v.x)) bad('x');
  if (OBJECT_OPS.has(v.op as OpName) || CONTROL_OPS.has(v.op as OpName)) {
    // Configuration, jobs and control entries are not files: the reserved root keeps them out of every root.
    if (v.r !== OBJECT_ROOT) bad('r');
    if (!isObjectName(v.p)) bad('p');
  } else {
    if (!str(v.r, 64) || v.r === '') bad('r');
    if (!str(v.p)) bad('p');
  }
  for (const [field, check] of Object.entries(OP_FIELDS[v.op as OpName])) {
    if (!check(v[field])) bad(field);
  }
  if (v.c !== undefined) {
    const c = v.c;
    if (!isObj(c) || !nat(c.first) || !nat(c.i) || !nat(c.n) || !nat(c.off) || !nat(c.total) ||
        c.n < 2 || c.i >= c.n || c.off > c.total || (c.first as number) + (c.i as number) !== v.s) {
      bad('c');
    }
    if (!DATA_OPS.has(v.op as OpName)) bad('c');
  }
  return v as unknown as EntryHeader;
}
