/**
 * SQLite's WAL and wal-index formats (https://www.sqlite.org/fileformat2.html#walformat and
 * https://www.sqlite.org/walformat.html), as far as reading committed transactions out of a
 * live WAL needs them. Pure functions over buffers: the agent does the I/O.
 */

/** Bytes of the WAL file header, and of each frame's header. */
export const WAL_HEADER = 32;
export const FRAME_HEADER = 24;
/** Bytes of the wal-index header the readers agree on: two copies of 48 bytes at the start of `-shm`. */
export const SHM_HEADER = 96;

/** The wal-index header (WalIndexHdr): where the WAL's committed part ends and which generation it is. */
export interface ShmHeader {
  /** Counter SQLite bumps at every header write: each commit, each restart of the WAL. */
  change: number;
  pageSize: number;
  /** Frames of the WAL that are committed. */
  mxFrame: number;
  /** Size of the database in pages after the last commit. */
  nPage: number;
  /** The running checksum after frame mxFrame. */
  frameCksum: [number, number];
  /** The generation's salts as written in the WAL header (raw bytes, 16 hex digits). */
  salt: string;
  /** Salt-1 as a big-endian number: a restart of the WAL adds one to it. */
  salt1: number;
  bigEndCksum: boolean;
}

/**
 * Reads the wal-index header from the first bytes of `-shm`, or undefined while its two copies
 * differ (a writer is between them: read again) or it is not initialised.
 */
export function parseShmHeader(buf: Buffer): ShmHeader | undefined {
  if (buf.length < SHM_HEADER) return undefined;
  // Both copies must match: SQLite writes copy two, then copy one, and a reader that sees them differ retries.
  if (buf.compare(buf, 0, 48, 48, 96) !== 0) return undefined;
  if (buf[12] !== 1) return undefined;
  const le = (o: number): number => buf.readUInt32LE(o);
  const szPage = buf.readUInt16LE(14);
  return {
    change: le(8),
    // 65536 is stored as 1 (its u16 form is 0 otherwise).
    pageSize: szPage === 1 ? 65536 : szPage,
    mxFrame: le(16),
    nPage: le(20),
    frameCksum: [le(24), le(28)],
    salt: buf.toString('hex', 32, 40),
    salt1: buf.readUInt32BE(32),
    bigEndCksum: buf[13] === 1,
  };
}

/** The WAL file header. */
export interface WalHeader {
  pageSize: number;
  checkpointSeq: number;
  salt: string;
  /** Checksums computed over big-endian words (magic 0x377f0683) rather than little-endian. */
  bigEndian: boolean;
  cksum: [number, number];
}

/** Reads and checks the WAL header; undefined when it is not one (an empty or foreign file). */
export function parseWalHeader(buf: Buffer): WalHeader | undefined {
  if (buf.length < WAL_HEADER) return undefined;
  const magic = buf.readUInt32BE(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return undefined;
  const bigEndian = magic === 0x377f0683;
  const cksum = walChecksum(bigEndian, buf, 0, 24, [0, 0]);
  if (cksum[0] !== buf.readUInt32BE(24) || cksum[1] !== buf.readUInt32BE(28)) return undefined;
  return { pageSize: buf.readUInt32BE(8), checkpointSeq: buf.readUInt32BE(12), salt: buf.toString('hex', 16, 24), bigEndian, cksum };
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * SQLite's WAL checksum over `len` bytes (a multiple of 8) of `buf` from `off`, continuing
 * from `s`: for each pair of 32-bit words, s1 += x0 + s2; s2 += x1 + s1 (mod 2^32).
 */
export function walChecksum(bigEndian: boolean, buf: Buffer, off: number, len: number, s: readonly [number, number]): [number, number] {
  let s1 = s[0];
  let s2 = s[1];
  const end = off + len;
  // The common case, a little-endian WAL read on a little-endian host into an aligned buffer:
  // the words are read through a typed array, many times faster than readUInt32LE.
  if (!bigEndian && LITTLE_ENDIAN_HOST && (buf.byteOffset + off) % 4 === 0) {
    const words = new Uint32Array(buf.buffer, buf.byteOffset + off, len / 4);
    for (let i = 0; i < words.length; i += 2) {
      s1 = (s1 + words[i]! + s2) >>> 0;
      s2 = (s2 + words[i + 1]! + s1) >>> 0;
    }
    return [s1, s2];
  }
  if (bigEndian) {
    for (let i = off; i < end; i += 8) {
      s1 = (s1 + buf.readUInt32BE(i) + s2) >>> 0;
      s2 = (s2 + buf.readUInt32BE(i + 4) + s1) >>> 0;
    }
  } else {
    for (let i = off; i < end; i += 8) {
      s1 = (s1 + buf.readUInt32LE(i) + s2) >>> 0;
      s2 = (s2 + buf.readUInt32LE(i + 4) + s1) >>> 0;
    }
  }
  return [s1, s2];
}

/** One committed transaction read out of the WAL: the frame it ends at, the database size after it, and its pages (last frame wins). */
export interface WalTxn {
  end: number;
  size: number;
  pages: Map<number, Buffer>;
}

/** Why frames read from a WAL cannot be trusted (overwritten by a restart, torn), for the caller's fallback. */
export class WalReadError extends Error {}

/**
 * Splits frames `from+1`..`from+n` of a WAL generation (their bytes in `buf`, frame `from+1`
 * first) into committed transactions, checking each frame's salt and the checksum chain from
 * `cksum` (the running checksum after frame `from`) to `endCksum`. Throws WalReadError when a
 * frame does not belong (a restart overwrote it) or the chain breaks, or the last is no commit.
 * The pages are views into `buf`.
 */
export function readFrames(buf: Buffer, pageSize: number, from: number, salt: string, bigEndian: boolean, cksum: readonly [number, number], endCksum: readonly [number, number]): WalTxn[] {
  const frame = FRAME_HEADER + pageSize;
  if (buf.length % frame !== 0) throw new WalReadError(`WAL read of ${buf.length} bytes is not whole frames of ${frame}`);
  const n = buf.length / frame;
  const txns: WalTxn[] = [];
  let pages = new Map<number, Buffer>();
  let s: [number, number] = [cksum[0], cksum[1]];
  for (let i = 0; i < n; i++) {
    const at = i * frame;
    if (buf.toString('hex', at + 8, at + 16) !== salt) throw new WalReadError(`frame ${from + i + 1} is of another WAL generation (the WAL was restarted before it was read)`);
    s = walChecksum(bigEndian, buf, at, 8, s);
    s = walChecksum(bigEndian, buf, at + FRAME_HEADER, pageSize, s);
    if (s[0] !== buf.readUInt32BE(at + 16) || s[1] !== buf.readUInt32BE(at + 20)) throw new WalReadError(`frame ${from + i + 1}: checksum chain broken`);
    const pgno = buf.readUInt32BE(at);
    if (pgno === 0) throw new WalReadError(`frame ${from + i + 1} names page 0`);
    // A view: the caller encodes the transactions before it reads into `buf` again.
    pages.set(pgno, buf.subarray(at + FRAME_HEADER, at + frame));
    const commitSize = buf.readUInt32BE(at + 4);
    if (commitSize !== 0) {
      txns.push({ end: from + i + 1, size: commitSize, pages });
      pages = new Map();
    }
  }
  if (pages.size > 0) throw new WalReadError(`frames after ${txns.at(-1)?.end ?? from} end in no commit`);
  if (s[0] !== endCksum[0] || s[1] !== endCksum[1]) throw new WalReadError('the checksum after the last frame is not the one the wal-index holds');
  return txns;
}

/** What the 100-byte database header says of the file: page size, change counter, size, and whether it is in WAL mode. */
export interface DbHeader {
  pageSize: number;
  /** File change counter (offset 24): rollback-journal mode bumps it at every commit. */
  counter: number;
  /** Size in pages (offset 28). */
  size: number;
  wal: boolean;
}

/** The SQLite magic that begins every database file. */
export const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** Whether `buf` begins with the SQLite magic. */
export function isDbHeader(buf: Buffer): boolean {
  return buf.length >= 16 && buf.compare(SQLITE_MAGIC, 0, 16, 0, 16) === 0;
}

/** The page size a database header (page 1's first 100 bytes) records: 1 stands for 65536. */
export function headerPageSize(page1: Buffer): number {
  const v = page1.readUInt16BE(16);
  return v === 1 ? 65536 : v;
}

/** Reads the database header; undefined when `buf` is not the start of a SQLite database. */
export function parseDbHeader(buf: Buffer): DbHeader | undefined {
  if (buf.length < 100 || !isDbHeader(buf)) return undefined;
  return { pageSize: headerPageSize(buf), counter: buf.readUInt32BE(24), size: buf.readUInt32BE(28), wal: buf[18] === 2 || buf[19] === 2 };
}
